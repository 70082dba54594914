"""Simulated shoppers over a small built-in catalog: the demo's traffic and the tests' too.

Each simulated user has one preferred department and clicks what they see from it, so a
working personalization visibly moves that department up their rankings.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from contracts import ActionEvent, Candidate, Item, SearchEvent

# Department → (brand, product) pairs. Our own small catalog: the demo must not depend on data.
CATALOG: dict[str, list[tuple[str, str]]] = {
    "running": [
        ("Stride", "Trail running shoes, waterproof"),
        ("Stride", "Lightweight road running shoes"),
        ("Pacer", "Running socks, 3 pack"),
        ("Pacer", "Reflective running vest"),
        ("Stride", "Marathon racing flats"),
        ("Pacer", "Running belt with bottle holder"),
        ("Stride", "Cushioned running shoes for long runs"),
        ("Pacer", "GPS running watch"),
    ],
    "audio": [
        ("Sonora", "Wireless noise cancelling headphones"),
        ("Sonora", "True wireless earbuds"),
        ("Boomly", "Portable bluetooth speaker"),
        ("Boomly", "Soundbar with subwoofer"),
        ("Sonora", "Studio monitor headphones"),
        ("Boomly", "Turntable with built-in speakers"),
        ("Sonora", "Sports earbuds, sweat resistant"),
        ("Boomly", "Smart speaker with voice assistant"),
    ],
    "coffee": [
        ("Brewhaus", "Espresso machine with milk frother"),
        ("Brewhaus", "Burr coffee grinder"),
        ("Kettleworks", "Gooseneck pour-over kettle"),
        ("Kettleworks", "French press, 1 litre"),
        ("Brewhaus", "Whole bean coffee, dark roast"),
        ("Kettleworks", "Cold brew coffee maker"),
        ("Brewhaus", "Drip coffee maker, 12 cup"),
        ("Kettleworks", "Insulated travel coffee mug"),
    ],
    "camping": [
        ("Summit", "Two person backpacking tent"),
        ("Summit", "Down sleeping bag, 0 degrees"),
        ("Trailhead", "Camping stove with fuel canister"),
        ("Trailhead", "Headlamp, rechargeable"),
        ("Summit", "Inflatable sleeping pad"),
        ("Trailhead", "Water filter for hiking"),
        ("Summit", "Hiking backpack, 50 litres"),
        ("Trailhead", "Folding camp chair"),
    ],
    "kitchen": [
        ("Forge", "Chef's knife, 8 inch"),
        ("Forge", "Cast iron skillet"),
        ("Potter", "Nonstick frying pan set"),
        ("Potter", "Stand mixer for baking"),
        ("Forge", "Bamboo cutting board"),
        ("Potter", "Dutch oven, enameled"),
        ("Forge", "Knife sharpening stone"),
        ("Potter", "Digital kitchen scale"),
    ],
    "games": [
        ("Meeple", "Strategy board game for families"),
        ("Meeple", "Cooperative card game"),
        ("Dicey", "Jigsaw puzzle, 1000 pieces"),
        ("Dicey", "Chess set with wooden board"),
        ("Meeple", "Party trivia game"),
        ("Dicey", "Polyhedral dice set for role playing"),
        ("Meeple", "Deck building card game"),
        ("Dicey", "Classic backgammon set"),
    ],
}

QUERIES = [
    "gift ideas", "best sellers", "new arrivals", "something for the weekend",
    "top rated", "deals under 100", "birthday present", "popular this week",
]


def catalog_items() -> list[Item]:
    items = []
    for dept, products in CATALOG.items():
        for n, (brand, title) in enumerate(products):
            items.append(
                Item(item_id=f"{dept}-{n}", title=title, brand=brand, category=dept,
                     price=float(20 + 15 * n))
            )
    return items


def department(item_id: str) -> str:
    return item_id.rsplit("-", 1)[0]


@dataclass
class Shopper:
    user_id: str
    likes: str
    rng: random.Random = field(repr=False)
    seq: int = 0

    def _id(self, kind: str) -> str:
        self.seq += 1
        return f"{self.user_id}-{kind}-{self.seq}"

    def search(self, ts: int, n_candidates: int = 16) -> SearchEvent:
        # The site's first stage: a mixed bag across departments, in no useful order.
        pool = [i.item_id for i in catalog_items()]
        chosen = self.rng.sample(pool, n_candidates)
        return SearchEvent(
            event_id=self._id("s"),
            request_id=self._id("r"),
            user_id=self.user_id,
            ts=ts,
            query=self.rng.choice(QUERIES),
            candidates=[
                Candidate(item_id=c, retrieval_score=round(1.0 - k / n_candidates, 3))
                for k, c in enumerate(chosen)
            ],
        )

    def react(self, search: SearchEvent, shown: list[str], ts: int) -> list[ActionEvent]:
        """Clicks on the liked department among what was shown near the top."""
        actions = []
        for pos, item_id in enumerate(shown[:8]):
            if department(item_id) == self.likes and self.rng.random() < 0.7:
                actions.append(
                    ActionEvent(
                        event_id=self._id("a"), user_id=self.user_id, ts=ts + pos,
                        item_id=item_id, action="click", request_id=search.request_id,
                        position=pos, query=search.query,
                    )
                )
        return actions

    def warm_up(self, ts: int, n: int = 3) -> list[ActionEvent]:
        """A few clicks in the liked department, as if from earlier visits."""
        liked = [f"{self.likes}-{k}" for k in range(len(CATALOG[self.likes]))]
        return [
            ActionEvent(event_id=self._id("a"), user_id=self.user_id, ts=ts + k,
                        item_id=item, action="click")
            for k, item in enumerate(self.rng.sample(liked, n))
        ]


def shoppers(n: int, seed: int = 7, prefix: str = "user") -> Iterator[Shopper]:
    rng = random.Random(seed)
    depts = list(CATALOG)
    for k in range(n):
        yield Shopper(user_id=f"{prefix}-{k}", likes=depts[k % len(depts)],
                      rng=random.Random(rng.random()))


def liked_share(user_likes: str, ranked: list[str], top: int = 3) -> float:
    """Fraction of the top `top` items from the user's liked department."""
    head = ranked[:top]
    return sum(department(i) == user_likes for i in head) / max(1, len(head))
