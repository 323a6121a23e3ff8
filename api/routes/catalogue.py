"""The catalogue: datasets, sharing, steward, update cycle and freshness (a department's, with
a key and a purpose); the public metadata anyone may harvest: DCAT-AP 3 and the service items."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import CallerDep, ConsumerDep, OptionalPurposeDep, PublicDep, PurposeDep
from api.openapi import AUTHED, PUBLIC, problems
from catalog.serving.dcat import catalogue_jsonld
from catalog.serving.public import public_datasets
from schemas.items import catalogue

router = APIRouter(prefix="/v1", tags=["catalogue"])
JSONLD = {200: {"description": "the catalogue (metadata only: no record, no holder)",
                "content": {"application/ld+json": {"schema": {"type": "object"}}}}}


@router.get("/datasets", summary="datasets with version, sharing attribute, steward and freshness",
            responses=problems(*AUTHED))
async def datasets(caller: CallerDep, purpose: PurposeDep, consumer: ConsumerDep) -> list[dict]:
    return consumer.datasets(caller, purpose)


@router.get("/catalogue.jsonld", summary="the catalogue as DCAT-AP 3 JSON-LD (public: no key needed)",
            description="Public metadata for harvesters (data portals, CKAN's DCAT harvester): datasets, "
                        "publishers, themes, keywords, contact points, distributions; never a record. "
                        "No key needed (one sent is not looked at), not audited, rate-limited per client "
                        "address. `purpose`, if given, is checked and changes nothing.",
            dependencies=[PublicDep], response_class=JSONResponse,
            responses={**JSONLD, **problems(*PUBLIC)})
async def dcat(request: Request, consumer: ConsumerDep, purpose: OptionalPurposeDep):
    doc = catalogue_jsonld(public_datasets(consumer.catalog), str(request.base_url).rstrip("/"),
                           request.app.state.settings.catalogue_publisher)
    return JSONResponse(doc, media_type="application/ld+json")


@router.get("/items", summary="service items and their materials: the codes a purpose names "
            "(public: no key or purpose needed)", dependencies=[PublicDep], responses=problems(*PUBLIC))
async def items(purpose: OptionalPurposeDep) -> list[dict]:
    return [i.as_dict() for i in catalogue().values()]
