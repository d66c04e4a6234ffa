"""Codec server: lets the Temporal UI (and `temporal` CLI) show decrypted payloads.

Implements Temporal's remote codec protocol: `POST /decode` and `POST /encode` take and
return `{"payloads": [...]}` in protobuf JSON. Only whoever can reach it (loopback by
default) and, when a token is set, presents it, sees plaintext; the Temporal server never
does. CORS admits only the configured UI origins.

    python -m runtime.codec_server   # FIREBREAK_CODEC_KEYS, FIREBREAK_CODEC_SERVER_PORT
"""

from __future__ import annotations

import logging
import secrets
import sys
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from runtime.codec import CodecKeyError, EncryptionCodec

logger = logging.getLogger("runtime.codec_server")
MAX_BODY_BYTES = 8 * 1024 * 1024


def create_codec_app(codec: EncryptionCodec, allowed_origins: list[str], token: str | None = None) -> FastAPI:
    app = FastAPI(title="Firebreak codec server", docs_url=None, redoc_url=None)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=allowed_origins,
        allow_methods=["POST", "OPTIONS"],
        allow_headers=["content-type", "x-namespace", "authorization"],
        allow_credentials=True,
    )

    async def handle(request: Request, op: Callable[[list], Awaitable[list]]) -> Response:  # type: ignore[type-arg]
        if token is not None:
            given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not secrets.compare_digest(given, token):
                return JSONResponse({"error": "missing or wrong bearer token"}, status_code=401)
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return JSONResponse({"error": "body too large"}, status_code=413)
        try:
            payloads = json_format.Parse(body, Payloads())
        except json_format.ParseError as exc:
            return JSONResponse({"error": f"not a payloads JSON object: {exc}"}, status_code=400)
        try:
            result = await op(list(payloads.payloads))
        except CodecKeyError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return Response(json_format.MessageToJson(Payloads(payloads=result)), media_type="application/json")

    @app.post("/decode")
    async def decode(request: Request) -> Response:
        return await handle(request, codec.decode)

    @app.post("/encode")
    async def encode(request: Request) -> Response:
        return await handle(request, codec.encode)

    return app


def main() -> int:
    import uvicorn

    from runtime.settings import Settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings()
    keys = settings.resolved_codec_keys()
    if keys is None:
        where = settings.codec_keys_file or settings.data_dir / "codec.keys"
        logger.error("cannot start: no codec keys (FIREBREAK_CODEC_KEYS or %s)", where)
        return 2
    try:
        codec = EncryptionCodec.from_spec(keys)
    except CodecKeyError as exc:
        logger.error("cannot start: %s", exc)
        return 2
    origins = [
        f"http://127.0.0.1:{settings.temporal_ui_port}",
        f"http://localhost:{settings.temporal_ui_port}",
    ]
    token = settings.codec_server_token.get_secret_value() if settings.codec_server_token else None
    app = create_codec_app(codec, origins, token)
    uvicorn.run(app, host=settings.codec_server_host, port=settings.codec_server_port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
