"""Tiny generated MovieLens copies, the same data written in both layouts.

Users each like one genre and mostly rate its movies, popular ones first (a Zipf-like pick),
in time order with some equal timestamps; some ratings come with the user's tag. Titles carry
a year and one latin-1 character, so both encodings are exercised.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from pathlib import Path

from evaluation.movielens import ML100K_GENRES

GENRES = ("Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi")
WORDS = {
    "Action": ("Strike", "Fury", "Chase", "Explosion"),
    "Comedy": ("Laughs", "Wedding", "Mix-up", "Party"),
    "Drama": ("Silence", "Mother", "River", "Letters"),
    "Horror": ("Haunting", "Cellar", "Scream", "Night"),
    "Romance": ("Kiss", "Paris", "Summer", "Café"),
    "Sci-Fi": ("Robots", "Mars", "Galaxy", "Android"),
}
TAGS = {"Action": "car chase", "Comedy": "funny", "Drama": "tearjerker",
        "Horror": "scary", "Romance": "romantic", "Sci-Fi": "space"}


@dataclass
class Fixture:
    movies: list[tuple[int, str, tuple[str, ...]]] = field(default_factory=list)
    ratings: list[tuple[int, int, float, int]] = field(default_factory=list)  # file order
    tags: list[tuple[int, int, str, int]] = field(default_factory=list)


def generate(users: int = 24, movies: int = 60, per_user: int = 14, seed: int = 7) -> Fixture:
    rng = random.Random(seed)
    fx = Fixture()
    for m in range(1, movies + 1):
        genre = GENRES[m % len(GENRES)]
        extra = (GENRES[(m * 7) % len(GENRES)],) if m % 3 == 0 else ()
        year = 1980 + (m * 3) % 40
        title = f"{rng.choice(WORDS[genre])} {rng.choice(WORDS[genre])} {m} ({year})"
        fx.movies.append((m, title, tuple(dict.fromkeys((genre, *extra)))))
    by_genre = {g: [m for m, _, gs in fx.movies if gs[0] == g] for g in GENRES}
    ts = 1_000_000_000
    events: list[tuple[int, int, int, float]] = []
    for u in range(1, users + 1):
        liked = GENRES[u % len(GENRES)]
        start = ts + rng.randrange(0, 400_000)
        rated: set[int] = set()
        for k in range(per_user):
            pool = by_genre[liked] if rng.random() < 0.8 else [m for m, _, _ in fx.movies]
            pool = [m for m in pool if m not in rated] or [
                m for m, _, _ in fx.movies if m not in rated]
            # Low ids first, like a popularity skew.
            movie = pool[min(int(rng.expovariate(0.35)), len(pool) - 1)]
            rated.add(movie)
            stamp = start + k * 600 - (k % 4 == 3) * 600  # every 4th shares its predecessor's ts
            rating = rng.choice((5.0, 4.5, 4.0, 3.0, 2.0)) if movie in by_genre[liked] else 2.0
            events.append((stamp, u, movie, rating))
            if rng.random() < 0.15:
                fx.tags.append((u, movie, TAGS[liked], stamp + 5))
    # Files are not in time order (MovieLens files are sorted by user), the loader sorts.
    events.sort(key=lambda e: (e[1], e[2]))
    fx.ratings = [(u, m, r, t) for t, u, m, r in events]
    return fx


def write_latest(fx: Fixture, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "movies.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["movieId", "title", "genres"])
        for m, title, genres in fx.movies:
            w.writerow([m, title, "|".join(genres) or "(no genres listed)"])
    with open(folder / "ratings.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["userId", "movieId", "rating", "timestamp"])
        for u, m, r, t in fx.ratings:
            w.writerow([u, m, r, t])
    with open(folder / "tags.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["userId", "movieId", "tag", "timestamp"])
        for u, m, tag, t in fx.tags:
            w.writerow([u, m, tag, t])
    return folder


def write_100k(fx: Fixture, folder: Path) -> Path:
    """ml-100k: whole-star ratings (rounded half up), no tags."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "u.data", "w", encoding="latin-1") as fh:
        for u, m, r, t in fx.ratings:
            fh.write(f"{u}\t{m}\t{int(r + 0.5)}\t{t}\n")
    with open(folder / "u.item", "w", encoding="latin-1") as fh:
        for m, title, genres in fx.movies:
            flags = "|".join("1" if g in genres else "0" for g in ML100K_GENRES)
            fh.write(f"{m}|{title}|01-Jan-{title[-5:-1]}||http://example.invalid/{m}|{flags}\n")
    with open(folder / "u.genre", "w", encoding="latin-1") as fh:
        for i, g in enumerate(ML100K_GENRES):
            fh.write(f"{g}|{i}\n")
    return folder
