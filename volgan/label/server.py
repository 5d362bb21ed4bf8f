"""The FastAPI app `volgan label serve` runs (``monailabel start_server --uvicorn_app volgan.label.server:app``).

It serves what the volgan app needs and nothing more: ``/info/``, the datastore routes and
``/infer/{model}``. MONAI Label's log, training, active learning, scoring, session, proxy and
OHIF routes are not served. Uploads (images, labels, files to infer) are written to a private
temporary file that is removed when the request ends, and must be NIfTI volumes; image ids and
label tags are plain names (:mod:`volgan.label.names`), stored and served by
:class:`~volgan.label.datastore.ConfinedDatastore`. Errors are JSON ``{"detail": ...}``: 400 for
a bad name, file or parameter, 403 for a path that leads out of the studies folder, 404 for an
unknown model, image or label, 409 for an image that already exists, 422 for a study that
cannot be read (the message names the file).

Settings, from the environment of the server process (``volgan label serve`` sets them):

* ``VOLGAN_LABEL_TOKEN``: bearer token every request must carry (default: none);
* ``VOLGAN_LABEL_ALLOW_ORIGINS``: space-separated origins (``scheme://host:port``) whose web
  pages may call the server (default: none; non-browser clients such as 3D Slicer send no
  ``Origin`` and are not affected);
* ``VOLGAN_LABEL_HOST``: the address the server binds; when it is a loopback address (the
  default), requests must name a loopback host.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Optional

from fastapi import BackgroundTasks, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.middleware import Middleware
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from monailabel.endpoints import datastore as datastore_endpoints
from monailabel.endpoints import info as info_endpoints
from monailabel.endpoints.infer import ResultType, send_response
from monailabel.interfaces.datastore import DefaultLabelTag
from monailabel.interfaces.exception import ImageNotFoundException, LabelNotFoundException
from monailabel.interfaces.utils.app import app_instance

from volgan.io import VolumeError
from volgan.label.datastore import BadVolume, check_volume
from volgan.label.guard import RequestGuard, is_loopback
from volgan.label.names import BadName, OutsideStudies, check_name, volume_extension

logger = logging.getLogger(__name__)

TOKEN_ENV = "VOLGAN_LABEL_TOKEN"
ORIGINS_ENV = "VOLGAN_LABEL_ALLOW_ORIGINS"
HOST_ENV = "VOLGAN_LABEL_HOST"

RESERVED_PARAMS = frozenset({"model", "image", "label", "file", "session", "session_id", "save_label", "label_tag",
                             "device", "description"})
"""Infer ``params`` keys a client may not set: they choose what is read, written or run where."""


@contextmanager
def received(upload: UploadFile, what: str) -> Iterator[str]:
    """An uploaded NIfTI volume in a private temporary file (mode 0600), removed afterwards."""
    ext = volume_extension(upload.filename)
    fd, path = tempfile.mkstemp(prefix="volgan-upload-", suffix=ext)
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(upload.file, out)
        check_volume(path, f"{what} {upload.filename!r}")
        yield path
    finally:
        os.unlink(path)


def form_json(value: str, field: str = "params") -> dict:
    """A form field that holds a JSON object."""
    try:
        parsed = json.loads(value or "{}")
    except json.JSONDecodeError as err:
        raise HTTPException(400, f"{field}: not JSON ({err})") from err
    if not isinstance(parsed, dict):
        raise HTTPException(400, f"{field}: a JSON object is expected")
    return parsed


def infer_params(params: str) -> dict:
    """The infer request's ``params`` form field: a JSON object without reserved keys."""
    parsed = form_json(params)
    reserved = sorted(RESERVED_PARAMS & parsed.keys())
    if reserved:
        raise HTTPException(400, f"params: {', '.join(reserved)} cannot be set through params")
    return parsed


@asynccontextmanager
async def lifespan(_app: FastAPI):
    instance = app_instance()
    instance.server_mode(True)
    instance.on_init_complete()
    yield


def add_routes(app: FastAPI) -> None:
    """The upload and infer routes, then MONAI Label's info and datastore routes (ours win)."""

    @app.put("/datastore/image", summary="Upload a new image (NIfTI)")
    @app.put("/datastore/", include_in_schema=False)
    def put_image(image: Optional[str] = None, params: str = Form("{}"), file: UploadFile = File(...)):
        image_id = check_name(image or volume_name(file.filename), "image id")
        info = form_json(params)
        with received(file, "image") as path:
            return {"image": app_instance().datastore().add_image(image_id, path, info)}

    @app.put("/datastore/label", summary="Save a label (NIfTI) for an image")
    def put_label(image: str, params: str = Form("{}"), tag: str = DefaultLabelTag.FINAL.value,
                  label: UploadFile = File(...)):
        check_name(image, "image id")
        check_name(tag or DefaultLabelTag.FINAL.value, "label tag")
        info = form_json(params)
        instance = app_instance()
        with received(label, "label") as path:
            label_id = instance.datastore().save_label(image, path, tag or DefaultLabelTag.FINAL.value, info)
        res = instance.on_save_label(image, label_id) or {}
        return {**res, "image": image, "label": label_id}

    @app.post("/infer/{model}", summary="Run a bundle on a study of the datastore or on an uploaded volume")
    def infer(background_tasks: BackgroundTasks, model: str, image: str = "", params: str = Form("{}"),
              file: Optional[UploadFile] = File(None), output: Optional[ResultType] = None):
        instance = app_instance()
        if model not in instance.info().get("models", {}):
            raise HTTPException(404, f"no model {model!r}; GET /info/ lists them")
        if output == ResultType.dicom_seg:
            raise HTTPException(400, "output=dicom_seg needs a DICOMweb datastore; this server has a local one")
        if bool(image) == bool(file):
            raise HTTPException(400, "give either image=<id of a study in the datastore> or an uploaded file")
        request = {"model": model, **instance.info().get("config", {}).get("infer", {}), **infer_params(params)}
        if image:
            instance.datastore().get_image_uri(check_name(image, "image id"))  # 404 before any work
            result = instance.infer({**request, "image": image})
        else:
            with received(file, "file") as path, instance.upload(path):
                result = instance.infer({**request, "image": path})
        return send_response(instance.datastore(), result, output, background_tasks)

    app.include_router(info_endpoints.router)
    app.include_router(datastore_endpoints.router)


def volume_name(filename: Optional[str]) -> str:
    """The image id an uploaded file names: its base name without the volume extension."""
    base = os.path.basename(filename or "")
    return base[: -len(volume_extension(base))]


def add_error_handlers(app: FastAPI) -> None:
    def detail(status: int):
        async def handler(_request: Request, err: Exception) -> JSONResponse:
            message = getattr(err, "msg", None) or str(err)
            return JSONResponse(status_code=status, content={"detail": message})
        return handler

    app.add_exception_handler(BadName, detail(400))
    app.add_exception_handler(BadVolume, detail(400))
    app.add_exception_handler(OutsideStudies, detail(403))
    app.add_exception_handler(IsADirectoryError, detail(403))
    app.add_exception_handler(ImageNotFoundException, detail(404))
    app.add_exception_handler(LabelNotFoundException, detail(404))
    app.add_exception_handler(FileExistsError, detail(409))
    app.add_exception_handler(VolumeError, detail(422))


def create_app(*, token: str | None = None, allowed_origins: tuple[str, ...] = (), loopback_only: bool = True) -> FastAPI:
    """The guarded FastAPI app (see the module docstring)."""
    middleware = [Middleware(RequestGuard, token=token, allowed_origins=allowed_origins, loopback_only=loopback_only)]
    if allowed_origins:
        middleware.append(Middleware(CORSMiddleware, allow_origins=list(allowed_origins), allow_credentials=True,
                                     allow_methods=["GET", "HEAD", "POST", "PUT", "DELETE"],
                                     allow_headers=["Authorization", "Content-Type"]))
    app = FastAPI(title="volgan MONAI Label", docs_url=None, redoc_url=None, lifespan=lifespan, middleware=middleware)
    add_error_handlers(app)
    add_routes(app)
    return app


def app_from_env() -> FastAPI:
    """:func:`create_app` with the settings in the environment (see the module docstring)."""
    origins = tuple(o for o in os.environ.get(ORIGINS_ENV, "").split() if o)
    host = os.environ.get(HOST_ENV, "127.0.0.1")
    token = os.environ.get(TOKEN_ENV) or None
    logger.info("token: %s; cross-origin requests from: %s; host check: %s",
                "required" if token else "none", ", ".join(origins) or "none", is_loopback(host))
    return create_app(token=token, allowed_origins=origins, loopback_only=is_loopback(host))


app = app_from_env()
