"""The public key set and the signed key status: public, so anyone can verify offline. Served
from the catalogue, so every API host serves the same ones (catalog/publish/key_status.py); a
catalogue that has none yet (upgraded, nothing published since) falls back to this host's files."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from api.openapi import problems
from base.errors import NotFound

router = APIRouter(tags=["keys"])


def _read(request: Request, name: str) -> bytes:
    material = request.app.state.consumer.catalog.key_material()
    if material is not None:
        jwks, key_status = material
        return (jwks if name == "jwks.json" else key_status + "\n").encode("utf-8")
    path = request.app.state.settings.keys_dir / name
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"尚未发布 (not published yet): "
                       f"no {name} yet; it appears with the first published version") from None


@router.get("/.well-known/jwks.json", summary="the exchange's public keys (RFC 7517)", response_class=Response,
            responses={200: {"content": {"application/jwk-set+json": {"schema": {"type": "object"}}}},
                       **problems(404)})
@router.get("/v1/keys/jwks.json", include_in_schema=False)
def jwks(request: Request):
    return Response(_read(request, "jwks.json"), media_type="application/jwk-set+json")


@router.get("/v1/keys/key-status.jws", summary="signed key status document (compact JWS)",
            response_class=Response,
            responses={200: {"content": {"application/jose": {"schema": {"type": "string"}}}},
                       **problems(404)})
def key_status(request: Request):
    return Response(_read(request, "key-status.jws"), media_type="application/jose")


@router.get("/health", include_in_schema=False)
async def health():
    return JSONResponse({"ok": True})
