"""Subscriptions to change notices: make, list, end (docs/consumer-api.md, "Subscriptions and
change notices"). Where notices are POSTed is set by the operator, never here."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from api.deps import CallerDep, ConsumerDep, PurposeDep
from api.openapi import AUTHED, HOLDER_ID_DOC, HOLDER_ID_EXAMPLES, problems
from catalog.serving.subscriptions import Subscriptions

router = APIRouter(prefix="/v1/subscriptions", tags=["notices"], responses=problems(*AUTHED, 403, 404))


class SubscriptionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dataset: str | None = Field(default=None, min_length=2, max_length=128,
                                description="a dataset the department may see for the purpose",
                                examples=["business_licence.market_regulation"])
    holder_id: str | None = Field(default=None, min_length=1, max_length=64,
                                  description=f"one holder's records (purpose must be case:NUMBER): {HOLDER_ID_DOC}",
                                  examples=HOLDER_ID_EXAMPLES)
    days: int = Field(default=30, ge=1, le=365, description="how long it lasts: 1-365 days for a dataset, "
                                                            "1-90 for a holder")


@router.post("", status_code=201, summary="subscribe to a dataset's or a holder's record changes",
             responses=problems(413))
async def subscribe(q: SubscriptionRequest, caller: CallerDep, purpose: PurposeDep, consumer: ConsumerDep) -> dict:
    return Subscriptions(consumer).add(caller, purpose, dataset=q.dataset, holder_id=q.holder_id, days=q.days)


@router.get("", summary="the department's active subscriptions")
async def subscriptions(caller: CallerDep, purpose: PurposeDep, consumer: ConsumerDep) -> list[dict]:
    return Subscriptions(consumer).list(caller, purpose)


@router.delete("/{subscription_id}", summary="end a subscription")
async def unsubscribe(subscription_id: Annotated[int, Path(ge=1, le=2**31 - 1)], caller: CallerDep,
                      purpose: PurposeDep, consumer: ConsumerDep) -> dict:
    return Subscriptions(consumer).remove(caller, purpose, subscription_id)
