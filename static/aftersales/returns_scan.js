// The returns scan bench (templates/aftersales/returns_scan.html, aftersales/views_returns.py).
// A barcode scanner is a keyboard: it types the return waybill and Enter into the focused
// input. A matched parcel shows its after-sale and one count row per SKU (good defaults to the
// expected quantity); an unclaimed one (无主件) shows in red with an error beep, and the items
// scanned next add their rows. "Book in" posts the counts; more than the after-sale covers
// asks for a confirmation. Requests go one after another, in scan order.
(function () {
  "use strict";
  var bench = document.getElementById("returns-bench");
  if (!bench) return;
  var input = document.getElementById("scan-input");
  var form = document.getElementById("scan-form");
  var message = document.getElementById("returns-message");
  var panel = document.getElementById("receipt-panel");
  var linesBody = document.getElementById("inspect-lines");
  var warehouse = document.getElementById("warehouse-select");
  var inspectForm = document.getElementById("inspect-form");
  var inspectButton = document.getElementById("inspect-button");
  var refundButton = document.getElementById("refund-button");
  var confirmBox = document.getElementById("confirm-box");
  var confirmExcess = document.getElementById("confirm-excess");
  var labelForm = document.getElementById("label-form");
  var csrf = bench.querySelector("input[name=csrfmiddlewaretoken]").value;
  var receipt = null;
  var extra = []; // SKUs scanned into an unclaimed parcel
  var queue = Promise.resolve();

  var beep = window.ecbaoScanBench.beeper(bench);
  var say = window.ecbaoScanBench.sayer(message);
  var cell = window.ecbaoScanBench.cell;

  function countInput(td, name, value, disabled) {
    var field = document.createElement("input");
    field.type = "number";
    field.min = "0";
    field.step = "1";
    field.name = name;
    field.value = value;
    field.className = "count-input";
    field.disabled = disabled;
    field.setAttribute("data-testid", name.split("_")[0] + "-input");
    td.appendChild(field);
  }

  function render(r) {
    receipt = r;
    if (!r) {
      panel.hidden = true;
      extra = [];
      return;
    }
    panel.hidden = false;
    panel.setAttribute("data-receipt", String(r.id));
    panel.setAttribute("data-status", r.status);
    document.getElementById("receipt-tracking").textContent = r.tracking_no;
    var status = document.getElementById("receipt-status");
    status.textContent = r.status_display;
    status.className = "badge badge-" + r.status;
    status.setAttribute("data-status", r.status);
    document.getElementById("receipt-link").href = r.url;
    var as = r.after_sale;
    document.getElementById("after-sale-box").hidden = !as;
    document.getElementById("unclaimed-box").hidden = r.status !== "unclaimed";
    if (as) {
      var link = document.getElementById("as-link");
      link.textContent = as.platform_after_sale_id;
      if (as.url) link.href = as.url;
      else link.removeAttribute("href");
      document.getElementById("as-type").textContent = as.type_display;
      document.getElementById("as-queue").textContent = as.queue_display;
      document.getElementById("as-store").textContent = as.store;
      document.getElementById("as-order").textContent = as.platform_order_id;
      document.getElementById("as-reason").textContent = as.reason || "—";
      var photos = document.getElementById("as-photos");
      photos.textContent = as.evidence.length ? "" : "—";
      as.evidence.forEach(function (url, i) {
        var a = document.createElement("a");
        a.href = url;
        a.target = "_blank";
        a.rel = "noopener noreferrer";
        a.textContent = "#" + (i + 1) + " ";
        photos.appendChild(a);
      });
    }
    if (r.status === "unclaimed") {
      document.getElementById("phone-tail").value = r.phone_tail || "";
      document.getElementById("note-input").value = r.note || "";
    }
    var inspected = r.status === "inspected";
    var rows = r.lines.slice();
    if (!inspected) {
      extra.forEach(function (sku) {
        if (!rows.some(function (l) { return l.sku_id === sku.sku_id; })) {
          rows.push({ sku_id: sku.sku_id, merchant_code: sku.merchant_code, name: sku.name, spec: sku.spec, expected: 0, good: null, defective: null });
        }
      });
    }
    linesBody.textContent = "";
    rows.forEach(function (line) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-testid", "inspect-line");
      tr.setAttribute("data-code", line.merchant_code);
      cell(tr, line.merchant_code, "mono");
      cell(tr, line.name + (line.spec ? " · " + line.spec : ""), "wrap");
      cell(tr, r.after_sale ? line.expected : "—", "num");
      var good = line.good != null ? line.good : r.after_sale ? line.expected : 1;
      countInput(cell(tr, "", "num"), "good_" + line.sku_id, good, inspected);
      countInput(cell(tr, "", "num"), "defective_" + line.sku_id, line.defective != null ? line.defective : 0, inspected);
      linesBody.appendChild(tr);
    });
    if (!rows.length) {
      var empty = document.createElement("tr");
      cell(empty, bench.getAttribute("data-label-none"), "empty").colSpan = 5;
      linesBody.appendChild(empty);
    }
    inspectButton.disabled = inspected || !rows.length;
    inspectButton.hidden = inspected;
    refundButton.hidden = !r.can_confirm;
    if (inspected) {
      confirmBox.hidden = true;
      confirmExcess.checked = false;
    }
  }

  function post(url, data) {
    return fetch(url, {
      method: "POST",
      body: new URLSearchParams(data),
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrf, "X-Requested-With": "fetch", Accept: "application/json" },
    }).then(function (response) {
      return response.json().catch(function () {
        return { ok: false, message: bench.getAttribute("data-network-error") + " (" + response.status + ")" };
      });
    }, function () {
      return { ok: false, message: bench.getAttribute("data-network-error") };
    });
  }

  function receive(code, label) {
    var data = { warehouse: warehouse.value, code: code };
    if (receipt && receipt.status === "unclaimed") data.receipt = receipt.id;
    if (label) {
      data.phone_tail = label.phone_tail;
      data.note = label.note;
    }
    return post(bench.getAttribute("data-receive-url"), data).then(function (answer) {
      if (answer.sku) {
        extra.push(answer.sku);
        render(answer.receipt);
        say(answer.message, "ok");
        beep("ok");
        return;
      }
      if (answer.receipt && (!receipt || receipt.id !== answer.receipt.id)) extra = [];
      if (answer.receipt) render(answer.receipt);
      say(answer.message, answer.ok ? "ok" : "refused");
      beep(answer.ok ? "ok" : "error");
    });
  }

  function inspect() {
    if (!receipt) return Promise.resolve();
    var data = new FormData(inspectForm);
    var body = { receipt: receipt.id };
    data.forEach(function (value, key) {
      body[key] = value;
    });
    if (receipt.status === "unclaimed") body.unclaimed = "1";
    return post(bench.getAttribute("data-inspect-url"), body).then(function (answer) {
      if (answer.excess) confirmBox.hidden = false;
      if (answer.ok) {
        extra = [];
        render(answer.receipt);
      }
      say(answer.message, answer.ok ? "done" : "refused");
      beep(answer.ok ? "done" : "error");
      input.focus();
    });
  }

  function confirmRefund() {
    if (!receipt) return Promise.resolve();
    return post(bench.getAttribute("data-confirm-url"), { receipt: receipt.id }).then(function (answer) {
      if (answer.receipt) render(answer.receipt);
      if (answer.ok) refundButton.hidden = true;
      say(answer.message, answer.ok ? "done" : "refused");
      beep(answer.ok ? "done" : "error");
      input.focus();
    });
  }

  function enqueue(job) {
    queue = queue.then(job, job);
    bench.setAttribute("data-busy", "1");
    var mine = queue;
    mine.then(function () {
      if (mine === queue) bench.removeAttribute("data-busy");
    });
    return mine;
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var code = input.value.trim();
    input.value = "";
    if (!code) return;
    enqueue(function () {
      return receive(code);
    });
  });
  inspectForm.addEventListener("submit", function (event) {
    event.preventDefault();
    enqueue(inspect);
  });
  labelForm.addEventListener("submit", function (event) {
    event.preventDefault();
    if (!receipt) return;
    var label = { phone_tail: document.getElementById("phone-tail").value, note: document.getElementById("note-input").value };
    var code = receipt.tracking_no;
    enqueue(function () {
      return receive(code, label);
    });
  });
  refundButton.addEventListener("click", function () {
    enqueue(confirmRefund);
  });
  document.getElementById("next-button").addEventListener("click", function () {
    render(null);
    say("", "");
    input.focus();
  });
  // Keep the scanner's keystrokes in the scan box unless someone is typing into a field.
  document.addEventListener("keydown", function (event) {
    var active = document.activeElement;
    if (active === input || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key && event.key.length === 1 && !(active && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName))) {
      input.focus();
    }
  });
  bench.setAttribute("data-ready", "1");
  input.focus();
})();
