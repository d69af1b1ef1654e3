"""What the API accepts and returns: pydantic models that refuse bad input before SQL runs."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator

#: Largest JSON body a write endpoint reads (the CSV import has its own limit).
MAX_BODY = 64 * 1024
#: Largest metadata object, as JSON text.
MAX_METADATA = 16 * 1024
MAX_CSV = 20 * 1024 * 1024


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL: refuse it here with a clear message.
    if "\x00" in value:
        raise ValueError("must not contain a NUL character (\\x00)")
    return value


def _tag(value: str) -> str:
    _no_nul(value)
    if "|" in value:
        raise ValueError("a tag must not contain '|' (the CSV tag separator)")
    return value


Text = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Sku = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Category = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=40)]
Price = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2)]
Stock = Annotated[int, Field(ge=0, le=2**31 - 1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _strings(cls, value: Any, info: Any) -> Any:
        if isinstance(value, str):
            return _no_nul(value)
        if isinstance(value, list):
            return [_tag(v) if isinstance(v, str) else v for v in value]
        if isinstance(value, dict):
            text = json.dumps(value)
            if len(text) > MAX_METADATA:
                raise ValueError(f"metadata is larger than {MAX_METADATA} bytes as JSON")
            if "\\u0000" in text:
                raise ValueError("metadata must not contain a NUL character (\\u0000)")
        return value


class ProductIn(_Strict):
    sku: Sku
    name: Text
    category: Category
    price: Price
    stock: Stock = 0
    tags: Annotated[list[Tag], Field(max_length=32)] = []
    metadata: dict[str, Any] = {}
    available_from: AwareDatetime | None = None


class ProductPatch(_Strict):
    sku: Sku | None = None
    name: Text | None = None
    category: Category | None = None
    price: Price | None = None
    tags: Annotated[list[Tag], Field(max_length=32)] | None = None
    metadata: dict[str, Any] | None = None
    available_from: AwareDatetime | None = None


class StockChange(_Strict):
    delta: Annotated[int, Field(ge=-(2**31) + 1, le=2**31 - 1)]


class Product(BaseModel):
    id: UUID
    sku: str
    name: str
    category: str
    price: Decimal
    stock: int
    tags: list[str]
    metadata: dict[str, Any]
    available_from: datetime | None
    created_at: datetime
    updated_at: datetime


class Page(BaseModel):
    items: list[Product]
    next: UUID | None = Field(description="pass as `after` for the next page; null at the end")


class LowStock(BaseModel):
    category: str
    products: int
    low: int
    out_of_stock: int
    lowest: list[dict[str, Any]]


class Imported(BaseModel):
    rows: int
