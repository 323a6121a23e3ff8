"""Each dataset's append-only log, public like the keys (hashes and signed checkpoints, never a
record): its latest C2SP checkpoint, its tiles (C2SP tlog-tiles, for transparency-log tools) and
RFC 9162 consistency proofs between versions (docs/verification.md, "The log")."""
from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api.deps import PublicDep
from api.openapi import PUBLIC, problems

router = APIRouter(prefix="/v1/logs", tags=["logs"], dependencies=[PublicDep])


@router.get("/{dataset}/consistency", summary="RFC 9162 consistency proof between two versions (public)",
            responses=problems(*PUBLIC, 404))
async def consistency(request: Request, dataset: str, first: int = Query(alias="from", ge=1),
                      second: int = Query(alias="to", ge=1)) -> dict:
    return request.app.state.consumer.catalog.consistency(dataset, first, second)


@router.get("/{dataset}/checkpoint", summary="the log's latest signed checkpoint (C2SP signed note)",
            response_class=Response, responses={200: {"content": {"text/plain": {}}}, **problems(*PUBLIC, 404)})
async def checkpoint(request: Request, dataset: str):
    note = request.app.state.consumer.catalog.log_checkpoint(dataset)
    return Response(note, media_type="text/plain; charset=utf-8")


@router.get("/{dataset}/tile/{path:path}", summary="a tile of the log (C2SP tlog-tiles)", response_class=Response,
            responses={200: {"content": {"application/octet-stream": {}}}, **problems(*PUBLIC, 404)})
async def tile(request: Request, dataset: str, path: str):
    data = request.app.state.consumer.catalog.log_tile(dataset, f"tile/{path}")
    return Response(data, media_type="application/octet-stream",
                    headers={"Cache-Control": "public, max-age=31536000, immutable" if ".p/" not in path
                             else "public, max-age=60"})
