"""MovieLens loaders for the two common layouts, into one in-memory form.

- ml-latest(-small): `ratings.csv` (userId,movieId,rating,timestamp), `movies.csv`
  (movieId,title,genres with "|"), `tags.csv` (userId,movieId,tag,timestamp); UTF-8, quoted.
- ml-100k: `u.data` (user, item, rating, timestamp; tab-separated), `u.item` (item|title|
  release date|video date|url|19 genre flags; latin-1), `u.genre` (name|index). No tags.

Ratings come back in replay order: by timestamp, ratings of the same second in a seeded
random order (`tie_seed`). Files list a user's ratings together, sorted by movie id, so file
order would make a user's same-second ratings always arrive lowest id first: a pattern no real
stream has, and one a model of "what comes next" could learn. The same files and seed always
give the same timeline. Nothing here knows about searches or splits.
"""

from __future__ import annotations

import csv
import logging
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from contracts import Item

log = logging.getLogger(__name__)

Layout = Literal["ml-latest", "ml-100k"]
NO_GENRES = "(no genres listed)"
# ml-100k's u.genre, for copies that lack the file (the order is the flag order in u.item).
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)
# "(1995)", also "(2007-)" and "(1983-1984)" of series.
_YEAR = re.compile(r"\((\d{4})(?:-\d{0,4})?\)\s*$")


class DataError(ValueError):
    """The folder is not a MovieLens copy in a known layout, or a file is malformed."""


@dataclass(frozen=True)
class Movie:
    movie_id: str
    title: str
    genres: tuple[str, ...]
    year: int | None

    @property
    def decade(self) -> str | None:
        return None if self.year is None else f"{self.year // 10 * 10}s"

    def item(self) -> Item:
        """The catalog item the worker is given; `Item.text()` is what every model reads."""
        return Item(
            item_id=self.movie_id,
            title=self.title,
            category=", ".join(self.genres) if self.genres else None,
        )


@dataclass(frozen=True)
class Rating:
    user_id: str
    movie_id: str
    rating: float
    ts: int  # seconds since the epoch, as in the files


@dataclass(frozen=True)
class Tag:
    user_id: str
    movie_id: str
    tag: str
    ts: int


@dataclass
class MovieLens:
    layout: Layout
    path: Path
    movies: dict[str, Movie]
    ratings: list[Rating]  # replay order
    tags: list[Tag] = field(default_factory=list)  # time order

    def summary(self) -> dict[str, int | str]:
        return {
            "layout": self.layout,
            "movies": len(self.movies),
            "ratings": len(self.ratings),
            "tags": len(self.tags),
            "users": len({r.user_id for r in self.ratings}),
        }


def year_of(title: str) -> int | None:
    match = _YEAR.search(title)
    return int(match.group(1)) if match else None


def detect(path: Path) -> Layout:
    if (path / "ratings.csv").is_file() and (path / "movies.csv").is_file():
        return "ml-latest"
    if (path / "u.data").is_file() and (path / "u.item").is_file():
        return "ml-100k"
    raise DataError(
        f"{path}: not a MovieLens folder (expected ratings.csv + movies.csv, or u.data + u.item)"
    )


def load(path: Path, tie_seed: int = 0) -> MovieLens:
    """The MovieLens copy at `path`, whichever of the two layouts it is in; same-second
    ratings in the order `tie_seed` draws."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: no such folder")
    layout = detect(path)
    data = _load_latest(path) if layout == "ml-latest" else _load_100k(path)
    unknown = {r.movie_id for r in data.ratings} - data.movies.keys()
    if unknown:
        # A rating of a movie without text cannot become a search; say so rather than guess.
        log.warning("%d rated movies missing from the movie file; their ratings dropped",
                    len(unknown))
        data.ratings = [r for r in data.ratings if r.movie_id in data.movies]
    rng = random.Random(tie_seed)
    draws = [rng.random() for _ in data.ratings]
    order = sorted(range(len(data.ratings)), key=lambda i: (data.ratings[i].ts, draws[i]))
    data.ratings = [data.ratings[i] for i in order]
    data.tags.sort(key=lambda t: t.ts)
    log.info("loaded %s", data.summary())
    return data


def _rows(path: Path, encoding: str = "utf-8") -> Iterator[tuple[int, dict[str, str]]]:
    with open(path, encoding=encoding, newline="") as fh:
        yield from enumerate(csv.DictReader(fh), start=2)


def _load_latest(path: Path) -> MovieLens:
    movies: dict[str, Movie] = {}
    for number, row in _rows(path / "movies.csv"):
        try:
            title = row["title"].strip()
            genres = tuple(g for g in row["genres"].split("|") if g and g != NO_GENRES)
            movies[row["movieId"]] = Movie(row["movieId"], title, genres, year_of(title))
        except (KeyError, AttributeError) as exc:
            raise DataError(f"{path / 'movies.csv'}:{number}: {exc!r}") from exc
    ratings = [
        Rating(row["userId"], row["movieId"], float(row["rating"]), int(row["timestamp"]))
        for row in _parsed(path / "ratings.csv", ("userId", "movieId", "rating", "timestamp"))
    ]
    tags: list[Tag] = []
    if (path / "tags.csv").is_file():
        tags = [
            Tag(row["userId"], row["movieId"], row["tag"].strip(), int(row["timestamp"]))
            for row in _parsed(path / "tags.csv", ("userId", "movieId", "tag", "timestamp"))
            if row["tag"].strip()
        ]
    return MovieLens("ml-latest", path, movies, ratings, tags)


def _parsed(path: Path, columns: tuple[str, ...]) -> Iterator[dict[str, str]]:
    """Rows with every column present and numbers that parse; else DataError naming the line."""
    for number, row in _rows(path):
        missing = [c for c in columns if not isinstance(row.get(c), str)]
        if missing or None in row:
            raise DataError(f"{path}:{number}: wrong fields (missing {missing or 'none'})")
        try:
            int(row["timestamp"])
            if "rating" in row:
                float(row["rating"])
        except ValueError as exc:
            raise DataError(f"{path}:{number}: {exc}") from exc
        yield row


def _load_100k(path: Path) -> MovieLens:
    genre_names = list(ML100K_GENRES)
    if (path / "u.genre").is_file():
        pairs = [line.rsplit("|", 1) for line in _lines(path / "u.genre") if "|" in line]
        genre_names = [name for name, _ in sorted(pairs, key=lambda p: int(p[1]))]
    movies: dict[str, Movie] = {}
    for number, line in enumerate(_lines(path / "u.item"), start=1):
        fields = line.split("|")
        if len(fields) < 5 + len(genre_names):
            raise DataError(f"{path / 'u.item'}:{number}: expected {5 + len(genre_names)} fields")
        movie_id, title = fields[0], fields[1].strip()
        flags = fields[5 : 5 + len(genre_names)]
        genres = tuple(
            g for g, f in zip(genre_names, flags, strict=True) if f == "1" and g != "unknown"
        )
        year = year_of(title)
        if year is None and re.search(r"\d{4}$", fields[2]):
            year = int(fields[2][-4:])  # release date "01-Jan-1995"
        movies[movie_id] = Movie(movie_id, title, genres, year)
    ratings: list[Rating] = []
    for number, line in enumerate(_lines(path / "u.data"), start=1):
        parts = line.split("\t")
        try:
            user, item, rating, ts = parts
            ratings.append(Rating(user, item, float(rating), int(ts)))
        except ValueError as exc:
            raise DataError(f"{path / 'u.data'}:{number}: {exc}") from exc
    return MovieLens("ml-100k", path, movies, ratings, [])


def _lines(path: Path) -> Iterator[str]:
    # ml-100k ships latin-1 titles ("Misérables").
    with open(path, encoding="latin-1") as fh:
        for line in fh:
            if line.strip():
                yield line.rstrip("\r\n")


__all__ = ["DataError", "Layout", "Movie", "MovieLens", "Rating", "Tag", "detect", "load"]
