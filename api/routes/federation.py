"""Federation (跨区域互认): a peer exchange (a department of role `exchange`, its Bearer key)
mirrors this exchange's own datasets as signed, and reports its consumers' accesses to their
records; anyone may read the cosignatures this exchange made as a witness of its peers' logs.
Rules: catalog/federation/origin.py; auditing: catalog/serving/federation.py."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import PeerDep, PublicDep
from api.openapi import AUTHED, PUBLIC, problems

router = APIRouter(prefix="/v1/federation", tags=["federation"])
Dataset = Annotated[str, Path(max_length=128, description="a dataset this exchange published")]
Version = Annotated[int, Path(ge=1, le=10**9)]
PARQUET = "application/vnd.apache.parquet"


def _service(request: Request):
    return request.app.state.federation


@router.get("/datasets", summary="the datasets your exchange may mirror from this one (peer exchanges)",
            responses=problems(*AUTHED, 403))
async def datasets(request: Request, caller: PeerDep) -> dict:
    return _service(request).datasets(caller)


@router.get("/datasets/{dataset}/versions/{version}", summary="a version's signed head and its files' digests",
            responses=problems(*AUTHED, 403, 404))
async def version(request: Request, dataset: Dataset, version: Version, caller: PeerDep) -> dict:
    return _service(request).version(caller, dataset, version)


@router.get("/datasets/{dataset}/versions/{version}/{name}",
            summary="a version's records.parquet or holders.parquet, as stored",
            response_class=StreamingResponse,
            responses={200: {"content": {PARQUET: {}}}, **problems(*AUTHED, 403, 404)})
async def version_file(request: Request, dataset: Dataset, version: Version, caller: PeerDep,
                       name: Annotated[str, Path(pattern=r"^(records|holders)\.parquet$")]):
    chunks, size = _service(request).file(caller, dataset, version, name)
    return StreamingResponse(chunks, media_type=PARQUET, headers={"Content-Length": str(size)})


class AccessReport(BaseModel):
    id: int
    at: str = Field(max_length=40, description="RFC 3339: when the peer answered its consumer")
    department: str = Field(max_length=128, description="the end consumer at the peer")
    purpose: str = Field(max_length=255, description="the end consumer's purpose")
    action: str = Field(max_length=48, description="lookup, bundle, status or materials")
    holder: str | None = Field(default=None, max_length=64)
    datasets: list[str] = Field(min_length=1, max_length=50)
    records: list[str] = Field(default_factory=list, max_length=1000)


class AccessReports(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reports: list[AccessReport] = Field(min_length=1, max_length=500)


@router.post("/access", summary="a peer's report of its consumers' accesses to records of this "
                                "exchange's datasets (each becomes an audit entry here)",
             responses=problems(*AUTHED, 403, 413))
async def access(request: Request, body: AccessReports, caller: PeerDep) -> dict:
    return _service(request).receive_reports(caller, [r.model_dump() for r in body.reports])


@router.get("/cosignatures", summary="this exchange's witness cosignatures on its peers' checkpoints (public)",
            dependencies=[PublicDep], responses=problems(*PUBLIC))
async def cosignatures(request: Request,
                       dataset: Annotated[str | None, Query(max_length=128)] = None) -> dict[str, Any]:
    return _service(request).cosignatures(dataset)
