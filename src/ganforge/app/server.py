"""The studio's web application: a static page of our own and the JSON API it calls.

Safe by default, because a model server is easy to knock over: request bodies are capped
(413) before they are parsed, image sides are capped (422) before pixels are decoded, every
network call goes through one bounded work queue (503 with Retry-After when full), and a run
is picked by name or index from those loaded at start, never by a path a client sends.
Errors are JSON objects `{"error": "one line"}`; images come back as PNG (image/png).
"""
# No `from __future__ import annotations`: FastAPI reads the handlers' annotations, whose
# limits come from create_app's arguments.
import asyncio
import importlib.util
import logging
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from .. import __version__
from ..errors import ConfigError, GanforgeError
from ..data.masks import parse_box
from ..models.truncation import MAX_PSI
from .jobs import Limits, TooLarge, edit_upload, image_size, interpolation_strip, sample_grid
from .runs import StudioRun
from .work import QueueFull, WorkQueue

STATIC = Path(__file__).with_name("static")
LOG = logging.getLogger("ganforge.studio")
PNG = {200: {"content": {"image/png": {}}, "description": "a PNG image"}}
ERRORS = {404: {"description": "no such run"}, 413: {"description": "request body over --max-upload-mb"},
          422: {"description": "a value, an image or a mask the run cannot take"},
          503: {"description": "the work queue is full; retry after Retry-After seconds"}}
# The page loads nothing from elsewhere: scripts, styles and images from this server only.
PAGE_POLICY = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
               "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
# A report is one self-contained file: its images are data: URIs, its styles inline.
REPORT_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:"
KIND_WORDS = {"generate": "a generation", "edit": "an editing", "translate": "a translation"}
CLASS_HELP = "class index or name (conditional runs)"


class NotFound(GanforgeError):
    """No run of that name or index."""


class Studio:
    """The runs, limits and work queue one application serves."""

    def __init__(self, runs: list[StudioRun], limits: Limits, work: WorkQueue):
        self.runs, self.limits, self.work = runs, limits, work
        self.by_name = {run.name: run for run in runs}

    def run(self, key: str, kinds: tuple[str, ...] | None = None) -> StudioRun:
        """A run by name, else by index; NotFound for anything else (never a path)."""
        run = self.by_name.get(key)
        if run is None and key.isdigit() and int(key) < len(self.runs):
            run = self.runs[int(key)]
        if run is None:
            raise NotFound(f"no run {key!r}; this studio serves {', '.join(self.by_name)}")
        if kinds and run.kind not in kinds:
            wanted = " or ".join(KIND_WORDS[kind] for kind in kinds)
            raise ConfigError(f"run {run.name!r} ({run.task}) is {KIND_WORDS[run.kind]} run; this needs "
                              f"{wanted} run")
        return run

    async def compute(self, fn, *args):
        """Run `fn(*args)` on the work queue and wait for it without holding the event loop."""
        return await asyncio.wrap_future(self.work.submit(fn, *args))


def error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` is answered 413 before any handler
    parses it, and at most `max_bytes` of it is ever held."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self.refuse(scope, receive, send)
        # Read the body up to the cap, then hand it on.
        chunks, total = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            total += len(chunks[-1])
            if total > self.max_bytes:
                return await self.refuse(scope, receive, send)
            if not message.get("more_body"):
                break
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def refuse(self, scope, receive, send):
        megabytes = self.max_bytes / 2**20
        response = error(413, f"the request is over this studio's upload limit of {megabytes:g} MB "
                              f"(ganforge serve --max-upload-mb)", Connection="close")
        await response(scope, receive, send)


def create_app(runs: list[StudioRun], limits: Limits | None = None, workers: int = 1,
               queue: int = 8) -> FastAPI:
    """The studio over `runs` (from `load_runs`).

    Args:
        runs: the runs to serve; clients address them by name or index.
        limits: upload, image and grid limits.
        workers: threads running networks at once.
        queue: jobs that may wait for a worker; one more is answered 503.

    Example:
        >>> app = create_app(load_runs(["runs/digits"]))
        >>> uvicorn.run(app, host="127.0.0.1", port=7860)
    """
    limits = limits or Limits()
    studio = Studio(runs, limits, WorkQueue(workers, queue))

    @asynccontextmanager
    async def lifespan(app):
        yield
        studio.work.close()

    # No /docs or /redoc: FastAPI's pages load their scripts from a CDN; the schema is /openapi.json.
    app = FastAPI(title="ganforge studio", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Sample, interpolate, edit and translate images with trained ganforge runs. "
                              "Images are returned as PNG; errors as {\"error\": \"...\"}.")
    app.state.studio = studio
    app.add_middleware(BodyLimit, max_bytes=limits.max_upload_bytes)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    # Errors: one JSON line each.
    @app.exception_handler(GanforgeError)
    async def ganforge_error(request: Request, exc: GanforgeError):
        if isinstance(exc, NotFound):
            return error(404, str(exc))
        if isinstance(exc, QueueFull):
            return error(503, str(exc), **{"Retry-After": "1"})
        return error(422, str(exc))  # TooLarge images and every value a run cannot take

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return error(exc.status_code, str(exc.detail), **(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        details = exc.errors()
        first = details[0] if details else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(part) for part in first["loc"][1:]) or "request"
        return JSONResponse({"error": f"{where}: {first['msg']}",
                             "detail": [{"loc": list(d["loc"]), "msg": d["msg"]} for d in details]},
                            status_code=422)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception):
        LOG.exception("studio request failed: %s %s", request.method, request.url.path)
        return error(500, f"internal error ({type(exc).__name__}); see the server's log")

    @app.middleware("http")
    async def page_policy(request: Request, call_next):
        response = await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        if not request.url.path.startswith("/api/"):
            response.headers["Content-Security-Policy"] = PAGE_POLICY
        return response

    # The page.
    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    # The API.
    @app.get("/api/health", summary="Liveness, queue load and limits")
    async def health():
        return {"status": "ok", "version": __version__, "runs": len(studio.runs),
                "queue": studio.work.stats(), "limits": limits.public()}

    @app.get("/api/runs", summary="The runs this studio serves")
    async def list_runs():
        return {"runs": [run.info() for run in studio.runs],
                "report": importlib.util.find_spec("ganforge.report") is not None}

    @app.get("/api/runs/{run}", summary="One run: what it takes, and its evaluation", responses=ERRORS)
    async def run_info(run: str):
        served = studio.run(run)
        return {**served.info(), "eval": served.evaluation()}

    @app.get("/api/runs/{run}/eval", summary="The run's eval.json (ganforge evaluate)", responses=ERRORS)
    async def run_eval(run: str):
        served = studio.run(run)
        evaluation = served.evaluation()
        if evaluation is None:
            return error(404, f"run {served.name!r} has no evaluation yet (ganforge evaluate RUN writes eval.json)")
        return evaluation

    @app.get("/api/runs/{run}/sample", summary="A grid of samples (PNG)", response_class=Response,
             responses={**PNG, **ERRORS})
    async def sample(run: str,
                     n: Annotated[int, Query(ge=1, le=limits.max_n, description="images")] = 16,
                     seed: Annotated[int, Query(ge=0, lt=2**63)] = 0,
                     cls: Annotated[str | None, Query(alias="class", description=CLASS_HELP)] = None,
                     truncation: Annotated[float | None, Query(ge=0, le=MAX_PSI, description="psi; 1 is none, above 1 wider")] = None,
                     nrow: Annotated[int | None, Query(ge=1, le=limits.max_n, description="images per row")] = None,
                     keep_best: Annotated[float | None, Query(gt=0, le=1, description="keep this best share of "
                                                              "candidates by the run's discriminator")] = None):
        served = studio.run(run, ("generate",))
        index = None if cls in (None, "") else served.class_index(cls)
        png = await studio.compute(sample_grid, served, n, seed, index, truncation, nrow, keep_best)
        return Response(png, media_type="image/png")

    @app.get("/api/runs/{run}/interpolate", summary="Images between two seeds, in one row (PNG)",
             response_class=Response, responses={**PNG, **ERRORS})
    async def interpolate(run: str,
                          seed_from: Annotated[int, Query(alias="from", ge=0, lt=2**63)] = 0,
                          seed_to: Annotated[int, Query(alias="to", ge=0, lt=2**63)] = 1,
                          steps: Annotated[int, Query(ge=2, le=limits.max_steps)] = 8,
                          cls: Annotated[str | None, Query(alias="class", description=CLASS_HELP)] = None,
                          cls_to: Annotated[str | None, Query(alias="class_to", description="class at the end")] = None):
        served = studio.run(run, ("generate",))
        first = None if cls in (None, "") else served.class_index(cls)
        last = None if cls_to in (None, "") else served.class_index(cls_to)
        if served.model.num_classes and first is None:
            first = 0
        png = await studio.compute(interpolation_strip, served, seed_from, seed_to, steps, first, last)
        return Response(png, media_type="image/png")

    @app.post("/api/runs/{run}/edit", summary="Edit or translate one uploaded image (PNG)",
              response_class=Response, responses={**PNG, **ERRORS})
    async def edit(run: str,
                   image: Annotated[UploadFile, File(description="the image: PNG, JPEG, WebP, TIFF, ...")],
                   mask: Annotated[UploadFile | None, File(description="inpaint/replace: white on black (or transparent) = hole, the image's size")] = None,
                   box: Annotated[str | None, Form(description="inpaint/replace: x,y,w,h instead of a mask")] = None,
                   cls: Annotated[str | None, Form(alias="class", description="replace: the class to draw")] = None,
                   direction: Annotated[str | None, Form(description="translation runs: a2b or b2a")] = None):
        served = studio.run(run, ("edit", "translate"))
        model = served.model
        image_bytes = await image.read()
        mask_bytes = (await mask.read() or None) if mask is not None else None
        width, height = image_size(image_bytes, "image", limits)
        scale = getattr(model, "scale", 1)
        if max(width, height) * scale > limits.max_side:
            raise TooLarge(f"the result would be {width * scale}x{height * scale} (x{scale}); this studio "
                           f"makes sides up to {limits.max_side} px (ganforge serve --max-side)")
        box_value = parse_box(box) if box else None
        index = None
        if served.kind == "translate":
            if mask_bytes is not None or box_value is not None or cls:
                raise ConfigError(f"run {served.name!r} translates whole images: give no mask, box or class")
            direction = direction or "a2b"
            if direction not in ("a2b", "b2a"):
                raise ConfigError(f"direction {direction!r}: must be a2b or b2a")
        else:
            if direction:
                raise ConfigError(f"run {served.name!r} ({served.task}) is not a translation run: give no direction")
            if mask_bytes is not None and box_value is not None:
                raise ConfigError("give a mask or a box, not both")
            holed = mask_bytes is not None or box_value is not None
            if model.needs_mask and not holed:
                raise ConfigError(f"run {served.name!r} ({served.task}) fills a hole: send a mask or a box")
            if not model.needs_mask and holed:
                raise ConfigError(f"run {served.name!r} ({served.task}) takes no mask or box")
            if mask_bytes is not None:
                image_size(mask_bytes, "mask", limits)
            if model.num_classes and not cls:
                raise ConfigError(f"run {served.name!r} ({served.task}) draws a class in the hole: give "
                                    f"class ({', '.join(model.class_names)})")
            if cls:
                index = served.class_index(cls)
        png = await studio.compute(edit_upload, served, image_bytes, mask_bytes, box_value, index,
                                   direction, limits)
        return Response(png, media_type="image/png")

    @app.get("/api/runs/{run}/report", summary="The run's report (self-contained HTML)",
             response_class=HTMLResponse, responses=ERRORS)
    async def report(run: str):
        served = studio.run(run)
        if importlib.util.find_spec("ganforge.report") is None:
            return error(501, "this ganforge has no report module")
        from ..report import build_report
        html = await studio.compute(build_report, [served.directory])
        return HTMLResponse(html, headers={"Content-Security-Policy": REPORT_POLICY})

    return app
