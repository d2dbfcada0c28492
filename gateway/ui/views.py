"""Web UI handlers: the wizard page, its htmx fragments, and the extension search (factory spec §12).

Handlers parse the form into a `WizardState`, ask the catalog (and, on the last step, the schematic
service) what they need, and render. `GET /` always answers a whole page, so a reload, the browser's
back button and htmx's history restore all land on the same step. A plain (no-JS) form post gets a
303 to that same URL.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

import grpc
import jinja2
from aiohttp import web
from multidict import MultiMapping

from gateway.errors import text_error
from gateway.keys import BACKENDS, CONFIG
from gateway.ui import links
from gateway.ui.state import Step, Target, WizardState
from gateway.ui.strings import LOCALES, Translator, pick_locale
from gateway.ui.wizard import (
    BOOTLOADER_CHOICES,
    DEFAULT_BOARD,
    DEFAULT_PLATFORM,
    Choice,
    Extension,
    Facts,
    WizardError,
    arch_options,
    back,
    chosen_version,
    cloud_platforms,
    current_step,
    customization_offers,
    default_version,
    fields_of,
    normalize,
    offered_boards,
    offered_versions,
    prefill,
    schematic_yaml,
    search_extensions,
    secureboot_offered,
    steps_for,
    validate,
    version_groups,
)
from imagefactory.v1 import catalog_pb2, common_pb2, schematic_pb2
from services.builder.enums import Platform
from services.builder.platforms import platform_info
from services.catalog.versions import InvalidVersion, Version, parse_requested
from services.shared.version import VERSION

log = logging.getLogger(__name__)

TEMPLATES: Final = Path(__file__).parent / "templates"
JINJA = web.AppKey("ui_jinja", jinja2.Environment)
LANG_COOKIE: Final = "lang"
LANG_COOKIE_MAX_AGE: Final = 31536000
HTML: Final = "text/html"
_BOOTLOADER_NAMES: Final = {
    common_pb2.BOOTLOADER_DUAL_BOOT: "dual-boot",
    common_pb2.BOOTLOADER_SD_BOOT: "sd-boot",
    common_pb2.BOOTLOADER_GRUB: "grub",
}


def make_environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def translator(request: web.Request) -> Translator:
    return Translator(pick_locale(request.cookies.get(LANG_COOKIE), request.headers.get("Accept-Language")))


def render(request: web.Request, template: str, **context: Any) -> web.Response:
    html = request.app[JINJA].get_template(template).render(t=translator(request), app_version=VERSION, **context)
    response = web.Response(text=html, content_type=HTML, charset="utf-8")
    response.headers["Cache-Control"] = "no-store"  # every page depends on the catalog and the form
    return response


# -- catalog facts ----------------------------------------------------------------------------------


async def load_facts(request: web.Request, state: WizardState) -> Facts:
    """Versions always; the chosen version's extensions once a step needs them."""
    catalog = request.app[BACKENDS].catalog
    reply = await catalog.ListVersions(catalog_pb2.ListVersionsRequest())
    versions = tuple(sorted(parse_requested(v) for v in reply.versions))
    latest = parse_requested(reply.latest_stable) if reply.latest_stable else None
    facts = Facts(versions, latest)
    wanted = state.get("version")
    if state.has("arch") or state.has("extensions"):
        try:
            version = parse_requested(wanted)
        except InvalidVersion:
            return facts
        if version not in offered_versions(state.get("target"), versions):
            return facts  # validate() names the bad version
        found = await catalog.ListExtensions(catalog_pb2.ListExtensionsRequest(version=version.tag))
        extensions = tuple(Extension(e.name, e.ref, e.description, e.author) for e in found.extensions)
        facts = Facts(versions, latest, extensions)
    return facts


# -- rendering a step -------------------------------------------------------------------------------


async def step_context(request: web.Request, state: WizardState) -> dict[str, Any]:
    """Everything `step.html` needs for the state's current step; WizardError for impossible input."""
    t = translator(request)
    state = normalize(state)
    facts = await load_facts(request, state)
    choice = validate(state, facts, t)
    step = current_step(state)
    visible = steps_for(state)
    context: dict[str, Any] = {
        "step": step.value,
        "state": state,
        "hidden": state.pairs(exclude=fields_of(step)),
        "number": visible.index(step) + 1,
        "total": len(visible),
        "can_go_back": step is not Step.TARGET,
    }
    target = state.get("target")
    version = chosen_version(state)
    if step is Step.TARGET:
        context["choices"] = [t.value for t in Target]
        context["selected"] = state.remembered("target") or Target.METAL.value
    elif step is Step.VERSION:
        offered = offered_versions(target, facts.versions)
        remembered = state.remembered("version")
        default = default_version(offered, facts.latest_stable)
        context["groups"] = version_groups(offered, t)
        context["latest"] = facts.latest_stable
        context["selected"] = remembered if remembered else (default.tag if default else "")
        shown = next((v for v in offered if v.tag == context["selected"]), None)
        context["version"] = shown
        context["docs_url"] = links.docs_url(shown) if shown is not None else ""
    elif step is Step.CLOUD and version is not None:
        context["platforms"] = cloud_platforms(version)
        context["selected"] = state.remembered("platform") or DEFAULT_PLATFORM.value
    elif step is Step.SBC and version is not None:
        context["boards"] = offered_boards(version)
        context["selected"] = state.remembered("board") or DEFAULT_BOARD
    elif step is Step.ARCH and version is not None:
        info = platform_info(Platform(state.get("platform") or Platform.METAL.value))
        assert info is not None
        context["archs"] = [a.value for a in arch_options(target, info)]
        context["selected"] = state.remembered("arch") or context["archs"][0]
        context["secureboot"] = secureboot_offered(target, info, version)
        context["secureboot_on"] = state.remembered("secureboot") not in ("", "0", "false", "off")
    elif step is Step.EXTENSIONS:
        chosen = state.remembered_extensions
        context.update(extension_list_context(facts.extensions or (), state.search, chosen))
    elif step is Step.CUSTOMIZATION and version is not None:
        context["offers"] = customization_offers(target, version)
        context["bootloaders"] = BOOTLOADER_CHOICES
        context["values"] = {
            name: state.remembered(name) for name in ("cmdline", "embedded-config", "overlay-options", "bootloader")
        }
    elif step is Step.FINAL and choice is not None:
        context.update(await final_context(request, choice))
    return context


def extension_list_context(catalog: tuple[Extension, ...], search: str, chosen: tuple[str, ...]) -> dict[str, Any]:
    return {
        "extensions": search_extensions(catalog, search, chosen),
        "chosen": set(chosen),
        "search": search,
    }


async def final_context(request: web.Request, choice: Choice) -> dict[str, Any]:
    """Create the schematic (idempotent), then every link that fits the target."""
    backends = request.app[BACKENDS]
    document = schematic_yaml(choice)
    created = await backends.schematic.CreateSchematic(schematic_pb2.CreateSchematicRequest(body=document.encode()))
    talosctl: list[str] = []
    if choice.version >= links.TALOSCTL_MIN_VERSION:
        try:
            listed = await backends.catalog.ListTalosctl(catalog_pb2.ListTalosctlRequest(version=choice.version.tag))
            talosctl = [f.name for f in listed.files]
        except grpc.aio.AioRpcError as exc:  # the page is still useful without them
            log.warning("no talosctl links", extra={"error": f"{exc.code().name}: {exc.details()}"})
    http = request.app[CONFIG].http
    return {
        "choice": choice,
        "schematic_id": created.id,
        "schematic_yaml": created.canonical_yaml,
        "links": links.final_links(
            choice,
            created.id,
            external_url=http.external_url,
            pxe_base=http.external_pxe_url or http.external_url,
            talosctl_files=talosctl,
        ),
        "secureboot_cert": http.external_url.rstrip("/") + "/secureboot/signing-cert.pem",
    }


async def render_step(request: web.Request, state: WizardState, template: str) -> web.Response:
    try:
        context = await step_context(request, state)
    except WizardError as exc:
        return text_error(400, exc.message)
    return render(request, template, **context)


# -- handlers ---------------------------------------------------------------------------------------


async def index(request: web.Request) -> web.Response:
    """`GET /`: the whole page at the step the query names (spec §12, §2.14)."""
    query = request.query
    if "lang" in query:
        return choose_language(request)
    if "schematic-id" in query:
        state = await prefilled(request, query["schematic-id"])
    else:
        state = WizardState.from_pairs(query.items())
    if request.method == "HEAD":
        return web.Response(status=200, content_type=HTML)
    return await render_step(request, state, "page.html")


async def wizard(request: web.Request) -> web.Response:
    """`POST /ui/wizard`: htmx gets the step fragment and `Hx-Push-Url`; a plain form post a 303."""
    form = await request.post()
    state = normalize(apply_action(form))
    url = state.url()
    if form.get("action") == "filter" and state.search:  # the no-JS search keeps its text in the URL
        url += ("&" if "?" in url else "?") + urlencode({"search": state.search})
    if request.headers.get("HX-Request") != "true":
        # Check before redirecting, so that bad input is a 400 here rather than on the next page.
        response = await render_step(request, state, "page.html")
        if response.status >= 400:
            return response
        return web.Response(status=303, headers={"Location": url})
    response = await render_step(request, state, "step.html")
    if response.status < 400:
        response.headers["HX-Push-Url"] = url
    return response


def apply_action(form: MultiMapping[Any]) -> WizardState:
    """The buttons: `back` steps back, `action=filter` re-shows the extension list filtered (no JS)."""
    state = WizardState.from_pairs((k, v) for k, v in form.items() if isinstance(v, str))
    if "back" in form:
        return back(normalize(state))
    if form.get("action") == "filter":
        return state.uncommit([Step.EXTENSIONS, Step.CUSTOMIZATION])
    if form.get("action") == "restart":
        return WizardState()
    return state


async def extensions_list(request: web.Request) -> web.Response:
    """`POST /ui/extensions-list` (params `version`, `search`, `extensions`): the filtered checkboxes."""
    form = await request.post()
    t = translator(request)
    try:
        version = parse_requested(str(form.get("version", "")))
    except InvalidVersion:
        return text_error(400, t("error.version", value=form.get("version", "")))
    state = WizardState.from_pairs((k, v) for k, v in form.items() if isinstance(v, str))
    found = await request.app[BACKENDS].catalog.ListExtensions(catalog_pb2.ListExtensionsRequest(version=version.tag))
    catalog = tuple(Extension(e.name, e.ref, e.description, e.author) for e in found.extensions)
    chosen = tuple(sorted({*state.extensions, *state.remembered_extensions}))
    return render(request, "extensions_list.html", **extension_list_context(catalog, state.search, chosen))


async def version_doc(request: web.Request) -> web.Response:
    """`GET /ui/version-doc?version=`: the documentation link of the selected version."""
    t = translator(request)
    try:
        version = parse_requested(request.query.get("version", ""))
    except InvalidVersion:
        return text_error(400, t("error.version", value=request.query.get("version", "")))
    return render(request, "version_doc.html", version=version, docs_url=links.docs_url(version))


def choose_language(request: web.Request) -> web.Response:
    """`?lang=`: remember the choice in a cookie and tell htmx to reload without it (spec §12)."""
    lang = request.query["lang"]
    if not lang:
        return text_error(400, translator(request)("error.lang"))
    rest = [(k, v) for k, v in request.query.items() if k != "lang"]
    location = request.rel_url.with_query(rest)
    if request.headers.get("HX-Request") == "true":
        response = web.Response(status=200, headers={"HX-Redirect": str(location)})
    else:  # a plain link or address bar: a redirect does the same without htmx
        response = web.Response(status=303, headers={"Location": str(location)})
    if lang in LOCALES:
        response.set_cookie(LANG_COOKIE, lang, path="/", max_age=LANG_COOKIE_MAX_AGE, httponly=True)
    return response


async def prefilled(request: web.Request, schematic_id: str) -> WizardState:
    """Remembered choices from a stored schematic; its own 404 text when there is none (spec §2.3)."""
    try:
        reply = await request.app[BACKENDS].schematic.GetSchematic(schematic_pb2.GetSchematicRequest(id=schematic_id))
    except grpc.aio.AioRpcError as exc:
        if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
            raise web.HTTPNotFound(text=translator(request)("error.schematic_missing")) from None
        raise
    custom = reply.schematic.customization
    return prefill(
        extensions=list(custom.official_extensions),
        kernel_args=list(custom.extra_kernel_args),
        embedded_config=custom.embedded_machine_configuration,
        overlay_name=reply.schematic.overlay.name,
        overlay_options_yaml=reply.schematic.overlay.options_yaml,
        bootloader=_BOOTLOADER_NAMES.get(custom.bootloader, ""),
    )


def version_label(version: Version, latest: Version | None, t: Translator) -> str:
    return t("version.latest", version=version.tag) if version == latest else version.tag
