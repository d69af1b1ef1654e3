"""A sample catalogue: ``products(n)`` yields ``n`` made-up products (the same ones every
time), ready for ``copy_in("product", rows, columns=COLUMNS)``."""

from __future__ import annotations

import random
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

COLUMNS = ("sku", "name", "category", "price", "stock", "tags", "metadata")

CATEGORIES = ("tools", "garden", "kitchen", "toys", "books", "office", "outdoor", "audio")
ADJECTIVES = ("Compact", "Sturdy", "Classic", "Deluxe", "Eco", "Pocket", "Pro", "Vintage")
NOUNS = ("Hammer", "Trowel", "Kettle", "Robot", "Notebook", "Stapler", "Lantern", "Speaker")
TAGS = ("new", "sale", "bestseller", "eco", "gift", "limited", "refurbished", "bundle")
COLORS = ("red", "green", "blue", "black", "white", "yellow")
ORIGINS = ("PT", "DE", "JP", "US", "VN", "MX")


def products(n: int, seed: int = 42) -> Iterator[tuple[Any, ...]]:
    rnd = random.Random(seed)
    for i in range(n):
        category = rnd.choice(CATEGORIES)
        name = f"{rnd.choice(ADJECTIVES)} {rnd.choice(NOUNS)} {i:05d}"
        price = Decimal(rnd.randint(99, 99_999)) / 100
        stock = rnd.choice((0, rnd.randint(1, 9), rnd.randint(10, 500)))
        tags = sorted(rnd.sample(TAGS, rnd.randint(0, 3)))
        metadata = {
            "color": rnd.choice(COLORS),
            "origin": rnd.choice(ORIGINS),
            "weight_g": rnd.randint(20, 20_000),
        }
        yield (f"SKU-{i:06d}", name, category, price, stock, tags, metadata)
