"""The catalogue: datasets, sharing, steward, update cycle and freshness; DCAT-AP; items."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import CallerDep, ConsumerDep, OptionalPurposeDep, PurposeDep
from api.openapi import AUTHED, problems
from catalog.serving.dcat import catalogue_jsonld
from schemas.items import catalogue

router = APIRouter(prefix="/v1", tags=["catalogue"], responses=problems(*AUTHED))


@router.get("/datasets", summary="datasets with version, sharing attribute, steward and freshness")
async def datasets(caller: CallerDep, purpose: PurposeDep, consumer: ConsumerDep) -> list[dict]:
    return consumer.datasets(caller, purpose)


@router.get("/catalogue.jsonld", summary="the catalogue as DCAT-AP JSON-LD",
            response_class=JSONResponse, responses={200: {"content": {"application/ld+json": {}}}})
async def dcat(request: Request, caller: CallerDep, purpose: PurposeDep, consumer: ConsumerDep):
    doc = catalogue_jsonld(consumer.datasets(caller, purpose), str(request.base_url).rstrip("/"))
    return JSONResponse(doc, media_type="application/ld+json")


@router.get("/items", summary="service items and their materials: the codes a purpose names "
            "(no purpose needed to ask)")
async def items(caller: CallerDep, purpose: OptionalPurposeDep) -> list[dict]:
    return [{k: v for k, v in i.as_dict().items()} for i in catalogue().values()]
