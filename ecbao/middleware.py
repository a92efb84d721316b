from django.conf import settings
from django.http import HttpResponse, HttpResponseBadRequest, JsonResponse
from django.template import loader
from django.utils import translation

from ecbao import inputs


class ChineseFirstLocaleMiddleware:
    """Chinese unless the person chose otherwise (language cookie); the browser's
    Accept-Language is deliberately ignored, operators expect the Chinese UI by default."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        chosen = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME)
        supported = {code for code, _name in settings.LANGUAGES}
        language = chosen if chosen in supported else settings.LANGUAGE_CODE
        translation.activate(language)
        request.LANGUAGE_CODE = language
        response = self.get_response(request)
        response.headers.setdefault("Content-Language", language)
        translation.deactivate()
        return response


def wants_json(request) -> bool:
    """API and platform-push paths answer errors in JSON; pages answer with an HTML page."""
    path = request.path_info
    return path.startswith("/api/") or path.startswith("/hooks/")


def error_json(*, code: str, message: str, http_status: int, details=None) -> JsonResponse:
    return JsonResponse(
        {"error": {"code": code, "message": message, "details": details}},
        status=http_status,
        json_dumps_params={"ensure_ascii": False},
    )


class InputGuardMiddleware:
    """Refuses (400) a NUL character anywhere in the path, the query string or a url-encoded
    form body, before any view, form or query sees it. Multipart bodies are left to the form
    fields (Django's CharField refuses NUL) so that large uploads are not read twice; JSON
    bodies are checked by ``ecbao.api.JSONParser``."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if self._has_nul(request):
            return bad_request_response(request, "The request contains a NUL character.")
        return self.get_response(request)

    @staticmethod
    def _has_nul(request) -> bool:
        if inputs.has_nul(request.path_info, request.path):
            return True
        if any(inputs.has_nul(k, *request.GET.getlist(k)) for k in request.GET):
            return True
        if request.method == "POST" and request.content_type == "application/x-www-form-urlencoded":
            return any(inputs.has_nul(k, *request.POST.getlist(k)) for k in request.POST)
        return False


def bad_request_response(request, message: str) -> HttpResponse:
    if wants_json(request):
        return error_json(code="invalid_input", message=message, http_status=400)
    return HttpResponseBadRequest(loader.render_to_string("400.html"))
