"""Realistic seed data and the default world.

``seed_default_world(world)`` creates, per platform: one app, three shops, listings
of ~20 products (1–4 SKUs each) whose merchant codes are shared across shops and
platforms, e-waybill accounts; plus a pool of buyers with Chinese names, 1xx
mobile numbers and addresses across provinces, cities and districts (GB/T 2260
codes). Everything derives from ``random.Random(world.seed)``.
"""

from __future__ import annotations

import base64
import hashlib
import random
from dataclasses import dataclass

from . import untidy
from .model import PLATFORMS, App, Receiver, Shop
from .world import World

# (province, code, [(city, code, [(district, code), ...]), ...])
REGIONS: list[tuple[str, str, list[tuple[str, str, list[tuple[str, str]]]]]] = [
    ("浙江省", "330000", [("杭州市", "330100", [("西湖区", "330106"), ("余杭区", "330110"), ("拱墅区", "330105")]),
                          ("宁波市", "330200", [("鄞州区", "330212"), ("海曙区", "330203")])]),
    ("广东省", "440000", [("广州市", "440100", [("天河区", "440106"), ("越秀区", "440104"), ("番禺区", "440113")]),
                          ("深圳市", "440300", [("南山区", "440305"), ("福田区", "440304"), ("宝安区", "440306")])]),
    ("江苏省", "320000", [("南京市", "320100", [("鼓楼区", "320106"), ("玄武区", "320102")]),
                          ("苏州市", "320500", [("姑苏区", "320508"), ("吴中区", "320506")])]),
    ("北京市", "110000", [("北京市", "110100", [("朝阳区", "110105"), ("海淀区", "110108"), ("东城区", "110101")])]),
    ("上海市", "310000", [("上海市", "310100", [("浦东新区", "310115"), ("徐汇区", "310104"), ("闵行区", "310112")])]),
    ("四川省", "510000", [("成都市", "510100", [("武侯区", "510107"), ("锦江区", "510104"), ("成华区", "510108")])]),
    ("湖北省", "420000", [("武汉市", "420100", [("洪山区", "420111"), ("江汉区", "420103"), ("武昌区", "420106")])]),
    ("山东省", "370000", [("济南市", "370100", [("历下区", "370102"), ("市中区", "370103")]),
                          ("青岛市", "370200", [("市南区", "370202"), ("崂山区", "370212")])]),
    ("河南省", "410000", [("郑州市", "410100", [("金水区", "410105"), ("二七区", "410103")])]),
    ("福建省", "350000", [("厦门市", "350200", [("思明区", "350203"), ("湖里区", "350206")]),
                          ("福州市", "350100", [("鼓楼区", "350102")])]),
    ("湖南省", "430000", [("长沙市", "430100", [("岳麓区", "430104"), ("芙蓉区", "430102")])]),
    ("陕西省", "610000", [("西安市", "610100", [("雁塔区", "610113"), ("碑林区", "610103")])]),
    ("重庆市", "500000", [("重庆市", "500100", [("渝中区", "500103"), ("江北区", "500105")])]),
    ("天津市", "120000", [("天津市", "120100", [("和平区", "120101"), ("南开区", "120104")])]),
    ("安徽省", "340000", [("合肥市", "340100", [("蜀山区", "340104"), ("包河区", "340111")])]),
    ("云南省", "530000", [("昆明市", "530100", [("五华区", "530102"), ("盘龙区", "530103")])]),
]  # fmt: skip

STREETS = [
    "城关街道",
    "新华街道",
    "人民街道",
    "文化街道",
    "东湖街道",
    "南苑街道",
    "西城街道",
    "北山街道",
    "长乐街道",
    "和平街道",
]
ROADS = [
    "文一西路",
    "人民路",
    "解放路",
    "中山路",
    "建设路",
    "和平路",
    "学院路",
    "长江路",
    "青年路",
    "滨江大道",
    "科技路",
    "幸福路",
]
COMMUNITIES = [
    "阳光花园",
    "翠苑一区",
    "金色家园",
    "万科城",
    "绿城桂花园",
    "碧桂园",
    "保利香槟国际",
    "世纪新城",
    "锦绣江南",
    "龙湖春江郦城",
]
SURNAMES = (
    "王王王李李李张张张刘刘陈陈杨杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕"
    "丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国玉兰俊峰晨曦子涵浩然欣怡梓轩雨桐思远嘉怡一诺佳琪宇航"
MOBILE_PREFIXES = ["130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "153", "155",
                   "156", "157", "158", "159", "166", "173", "176", "177", "180", "181", "182", "183", "185", "186",
                   "187", "188", "189", "191", "198", "199"]  # fmt: skip
NICK_WORDS = ["快乐", "小", "阿", "大", "甜甜", "追风", "星星", "木子", "橙子", "柠檬", "微笑", "晴天"]
BUYER_REMARKS = ["请尽快发货", "发顺丰可以吗，补差价", "不要放快递柜", "送人的，不要放价格单", "周末才有人在家", "帮忙包装好一点",
                 "备注：白色要大一码", "谢谢老板", "能不能多送个小礼品"]  # fmt: skip


@dataclass(frozen=True)
class ProductSeed:
    title: str
    category: str
    base_price_fen: int
    code_prefix: str
    spec_names: tuple[str, ...]
    variants: tuple[tuple[str, ...], ...]  # values per SKU, aligned with spec_names
    codes: tuple[str, ...]


def _p(
    title: str,
    category: str,
    price: int,
    prefix: str,
    names: tuple[str, ...],
    variants: list[tuple[tuple[str, ...], str]],
) -> ProductSeed:
    return ProductSeed(
        title,
        category,
        price,
        prefix,
        names,
        tuple(v for v, _ in variants),
        tuple(f"{prefix}-{c}" for _, c in variants),
    )


PRODUCTS: list[ProductSeed] = [
    _p("纯棉圆领短袖T恤男女同款宽松百搭", "服饰/T恤", 5900, "TSHIRT", ("颜色", "尺码"),
       [(("白色", "M"), "WHT-M"), (("白色", "L"), "WHT-L"), (("黑色", "M"), "BLK-M"), (("黑色", "L"), "BLK-L")]),
    _p("冰丝防晒衣女夏季薄款透气防紫外线", "服饰/外套", 8900, "SUNCOAT", ("颜色",), [(("浅蓝",), "BLU"), (("樱花粉",), "PNK")]),
    _p("高腰阔腿牛仔裤女垂感显瘦直筒裤", "服饰/裤装", 12900, "JEANS", ("尺码",), [(("S",), "S"), (("M",), "M"), (("L",), "L")]),
    _p("316不锈钢保温杯500ml大容量便携水杯", "家居/杯具", 6900, "CUP316", ("颜色",),
       [(("奶白",), "WHT"), (("雾蓝",), "BLU"), (("墨绿",), "GRN")]),
    _p("陶瓷马克杯带盖勺办公室咖啡杯礼盒装", "家居/杯具", 3900, "MUG", ("规格",), [(("单只装",), "ONE")]),
    _p("每日坚果混合果仁礼盒孕妇零食大礼包", "食品/坚果", 9900, "NUTS", ("规格",), [(("750g/30袋",), "750"), (("1050g/42袋",), "1050")]),
    _p("云南小粒咖啡豆新鲜烘焙现磨黑咖啡454g", "食品/咖啡", 6800, "COFFEE", ("烘焙度",), [(("中度烘焙",), "MED"), (("深度烘焙",), "DARK")]),
    _p("宁夏特级有机黑枸杞子泡水养生250g", "食品/滋补", 7900, "GOJI", ("规格",), [(("250g罐装",), "250")]),
    _p("手工古法红糖姜茶独立小包装暖身茶", "食品/冲饮", 2990, "GINGER", ("口味",), [(("原味",), "ORI"), (("红枣味",), "DATE")]),
    _p("主动降噪真无线蓝牙耳机超长续航", "数码/耳机", 19900, "EARBUD", ("颜色",), [(("珍珠白",), "WHT"), (("曜石黑",), "BLK")]),
    _p("20000毫安大容量充电宝快充移动电源", "数码/充电", 9900, "PWRBANK", ("容量",), [(("20000mAh",), "20K")]),
    _p("液态硅胶手机壳适用iPhone15全包防摔", "数码/配件", 2900, "CASE15", ("颜色",),
       [(("午夜黑",), "BLK"), (("雾霾蓝",), "BLU"), (("奶茶色",), "TEA"), (("薄荷绿",), "MNT")]),
    _p("竹纤维洗碗布不沾油加厚抹布10片装", "家居/清洁", 1990, "DISHCLOTH", ("规格",), [(("10片装",), "10")]),
    _p("家用多功能桌面收纳盒抽屉式三件套", "家居/收纳", 4590, "STORAGE", ("尺寸",), [(("小号三件套",), "S"), (("大号三件套",), "L")]),
    _p("儿童卡通雨衣带书包位男女童雨披", "母婴/雨具", 3990, "KIDRAIN", ("尺码",), [(("S 90-110cm",), "S"), (("M 110-130cm",), "M"), (("L 130-150cm",), "L")]),
    _p("全价冻干双拼猫粮成猫幼猫通用1.5kg", "宠物/猫粮", 8900, "CATFOOD", ("口味",), [(("鸡肉味",), "CHK"), (("三文鱼味",), "SAL")]),
    _p("氨基酸洗面奶温和清洁控油男女120g", "美妆/洁面", 5900, "CLEANSER", ("规格",), [(("120g",), "120")]),
    _p("玻尿酸补水保湿面膜贴舒缓修护10片", "美妆/面膜", 4900, "MASK", ("规格",), [(("10片/盒",), "10")]),
    _p("羊毛混纺围巾秋冬保暖百搭纯色披肩", "服饰/配饰", 9900, "SCARF", ("颜色",), [(("燕麦色",), "OAT"), (("酒红",), "RED"), (("藏青",), "NAV")]),
    _p("运动速干袜男女中筒毛巾底跑步袜5双装", "服饰/袜子", 3500, "SOCKS", ("款式",), [(("中筒5双",), "MID"), (("短筒5双",), "LOW")]),
]  # fmt: skip

# WeChat-only product whose merchant codes are Chinese (``wechat.chinese_sku_code``): merchants
# on WeChat type codes like 茶具-青瓷六件 into sku_code.
CHINESE_CODE_PRODUCT = _p("青瓷功夫茶具套装家用客厅泡茶壶", "家居/茶具", 16800, "茶具", ("款式",),
                          [(("青瓷六件套",), "青瓷六件"), (("白瓷六件套",), "白瓷六件")])  # fmt: skip

SHOP_NAMES = {
    "douyin": ["鲸选好物旗舰店", "小满生活馆", "山野茶仓"],
    "kuaishou": ["快乐衣橱的小店", "老铁优选", "暖暖家居铺"],
    "wechat": ["微光优选", "知味小厨", "拾光生活馆"],
}
WAREHOUSE_SENDER = {
    "name": "鲸选仓库",
    "mobile": "13800005678",
    "province": "浙江省",
    "city": "杭州市",
    "district": "余杭区",
    "street": "仓前街道",
    "detail": "海创园物流中心3号库",
}


def random_receiver(rng: random.Random) -> Receiver:
    """A plausible Chinese receiver: name, 1xx mobile, 4-level address."""
    province, pcode, cities = rng.choice(REGIONS)
    city, ccode, districts = rng.choice(cities)
    district, dcode = rng.choice(districts)
    street_index = rng.randrange(len(STREETS))
    name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2))))
    phone = rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"
    detail = (
        f"{rng.choice(ROADS)}{rng.randrange(1, 999)}号{rng.choice(COMMUNITIES)}"
        f"{rng.randrange(1, 30)}栋{rng.randrange(1, 6)}单元{rng.randrange(1, 33)}{rng.randrange(1, 5):02d}室"
    )
    return Receiver(
        name=name,
        phone=phone,
        province=province,
        province_code=pcode,
        city=city,
        city_code=ccode,
        district=district,
        district_code=dcode,
        street=STREETS[street_index],
        street_code=f"{dcode}{street_index + 1:03d}",
        detail=detail,
    )


def random_nickname(rng: random.Random) -> str:
    return rng.choice(NICK_WORDS) + rng.choice(GIVEN) + rng.choice(GIVEN) + str(rng.randrange(10, 999))


def _uuidish(world: World, label: str) -> str:
    h = hashlib.sha256(f"{world.seed}:{label}".encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}"


def default_app(world: World, platform: str) -> App:
    """The seeded app of a platform, with credentials in that platform's formats."""
    h = hashlib.sha256(f"{world.seed}:{platform}:app".encode()).hexdigest()
    digits = str(int(h[:16], 16)).rjust(20, "0")
    if platform == "douyin":
        return App(
            app_key="7" + digits[:18],
            platform=platform,
            name="ecbao 抖店沙箱应用",
            app_secret=_uuidish(world, "douyin:secret"),
            service_id=digits[10:15],
        )
    if platform == "kuaishou":
        return App(
            app_key="ks" + digits[:18],
            platform=platform,
            name="ecbao 快手沙箱应用",
            app_secret=base64.urlsafe_b64encode(bytes.fromhex(h[16:48])).decode().rstrip("="),
            sign_secret=h[32:64],
            message_key=base64.b64encode(bytes.fromhex(h[:32])).decode(),
        )
    return App(
        app_key="wx" + h[:16],
        platform=platform,
        name="ecbao 微信小店沙箱应用",
        app_secret=h[16:48],
        push_token=h[48:64],
        encoding_aes_key=base64.b64encode(bytes.fromhex(h[:64])).decode().rstrip("="),
    )


def seed_default_world(
    world: World,
    *,
    platforms: tuple[str, ...] = PLATFORMS,
    shops_per_platform: int = 3,
    buyers: int = 200,
    product_count: int = 20,
) -> dict[str, list[str]]:
    """Populate an empty world; returns ``{platform: [shop_id, ...]}``."""
    rng = random.Random(world.seed)
    shops_by_platform: dict[str, list[str]] = {}
    for platform in platforms:
        world.create_app(default_app(world, platform))
        shop_ids = []
        for index in range(shops_per_platform):
            (shop_id,) = world.new_id(platform, "shop")
            name = SHOP_NAMES[platform][index % 3] + ("" if index < 3 else str(index))
            world.create_shop(Shop(shop_id=shop_id, platform=platform, name=name))
            shop_ids.append(shop_id)
            _list_products(world, rng, shop_id, index, product_count, platform)
            if platform == "wechat" and untidy.hit(world, "wechat.chinese_sku_code", shop_id):
                _list_chinese_code_product(world, shop_id)
            for carrier, available in (("ZTO", 5000), ("YTO", 2000), ("SF", 1000)):
                world.create_waybill_account(
                    shop_id=shop_id,
                    carrier=carrier,
                    netsite_code=f"{carrier}-{rng.randrange(100000, 999999)}",
                    netsite_name=f"杭州余杭{carrier}仓前网点",
                    available=available,
                    sender=dict(WAREHOUSE_SENDER),
                )
        shops_by_platform[platform] = shop_ids
    for _ in range(buyers):
        world.create_buyer(random_nickname(rng), random_receiver(rng))
    return shops_by_platform


def _list_chinese_code_product(world: World, shop_id: str) -> None:
    rng = random.Random(f"{world.seed}:chinese-codes:{shop_id}")  # the main stream stays as it was
    product = CHINESE_CODE_PRODUCT
    skus = [
        {"code": code, "spec": [[n, v] for n, v in zip(product.spec_names, values, strict=True)],
         "price_fen": product.base_price_fen, "stock": rng.randrange(20, 300)}
        for values, code in zip(product.variants, product.codes, strict=True)
    ]  # fmt: skip
    world.create_product(shop_id=shop_id, title=product.title, category=product.category, skus=skus)


def _list_products(
    world: World, rng: random.Random, shop_id: str, shop_index: int, count: int, platform: str
) -> None:
    # Shop 0 lists everything, shop 1 the first ~70 %, shop 2 the last ~70 %: codes overlap.
    seeds = PRODUCTS[:count]
    cut = max(1, int(len(seeds) * 0.7))
    chosen = seeds if shop_index % 3 == 0 else (seeds[:cut] if shop_index % 3 == 1 else seeds[-cut:])
    markup = {"douyin": 0, "kuaishou": -200, "wechat": 100}.get(platform, 0)
    for product in chosen:
        skus = []
        for values, code in zip(product.variants, product.codes, strict=True):
            skus.append(
                {
                    "code": code,
                    "spec": [[n, v] for n, v in zip(product.spec_names, values, strict=True)],
                    "price_fen": max(100, product.base_price_fen + markup),
                    "stock": rng.randrange(20, 300),
                }
            )
        world.create_product(shop_id=shop_id, title=product.title, category=product.category, skus=skus)
