"""Loaders: both layouts give the same movies and timeline; bad input is named precisely."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaluation.movielens import DataError, detect, load, year_of
from tests.unit.evaluation.fixtures import Fixture


def test_both_layouts_load_the_same_movies_and_timeline(
    latest_dir: Path, ml100k_dir: Path, fixture_data: Fixture
) -> None:
    latest, old = load(latest_dir), load(ml100k_dir)
    assert (latest.layout, old.layout) == ("ml-latest", "ml-100k")
    assert latest.movies == old.movies
    assert len(latest.movies) == len(fixture_data.movies)
    café = next(m for m in latest.movies.values() if "Café" in m.title)  # latin-1 in ml-100k
    assert old.movies[café.movie_id].title == café.title
    assert [(r.user_id, r.movie_id, r.ts) for r in latest.ratings] == [
        (r.user_id, r.movie_id, r.ts) for r in old.ratings
    ]
    # ml-100k has whole stars; ml-latest keeps halves.
    assert {r.rating for r in old.ratings} <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert any(r.rating == 4.5 for r in latest.ratings)
    assert len(latest.tags) == len(fixture_data.tags) and old.tags == []


def test_ratings_replay_in_time_order_with_ties_in_seeded_random_order(latest_dir: Path) -> None:
    data = load(latest_dir)
    stamps = [r.ts for r in data.ratings]
    assert stamps == sorted(stamps)
    ties = [(a, b) for a, b in zip(data.ratings, data.ratings[1:], strict=False) if a.ts == b.ts]
    assert ties, "the fixture has equal timestamps"
    # Files list a user's ratings together by movie id; ties must not keep that order.
    in_file_order = [(int(a.user_id), int(a.movie_id)) < (int(b.user_id), int(b.movie_id))
                     for a, b in ties]
    assert not all(in_file_order)
    assert load(latest_dir).ratings == data.ratings  # the same seed, the same timeline
    other = load(latest_dir, tie_seed=1).ratings
    assert other != data.ratings and sorted(other, key=str) == sorted(data.ratings, key=str)


def test_movie_text_and_decade(latest_dir: Path) -> None:
    movie = next(iter(load(latest_dir).movies.values()))
    assert movie.year is not None and movie.decade == f"{movie.year // 10 * 10}s"
    item = movie.item()
    assert item.item_id == movie.movie_id and item.title == movie.title
    assert item.text().startswith(movie.title) and movie.genres[0] in item.text()


@pytest.mark.parametrize(
    ("title", "year"),
    [("Toy Story (1995)", 1995), ("Babylon 5", None), ("Cosmos (1980) ", 1980),
     ("Sherlock (2010-)", 2010), ("Twin Peaks (1990-1991)", 1990)],
)
def test_year_of(title: str, year: int | None) -> None:
    assert year_of(title) == year


def test_unknown_and_malformed_folders(tmp_path: Path, latest_dir: Path) -> None:
    with pytest.raises(DataError, match="no such folder"):
        load(tmp_path / "missing")
    with pytest.raises(DataError, match="not a MovieLens folder"):
        detect(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "movies.csv").write_text((latest_dir / "movies.csv").read_text())
    (bad / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.0,100\n1,2,x,101\n")
    with pytest.raises(DataError, match=r"ratings.csv:3"):
        load(bad)
    (bad / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.0\n")
    with pytest.raises(DataError, match=r"ratings.csv:2: wrong fields"):
        load(bad)


def test_ratings_of_unknown_movies_are_dropped(tmp_path: Path, latest_dir: Path) -> None:
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "movies.csv").write_text((latest_dir / "movies.csv").read_text())
    (folder / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,1,4.0,100\n1,99999,3.0,101\n")
    data = load(folder)
    assert [r.movie_id for r in data.ratings] == ["1"] and data.tags == []
