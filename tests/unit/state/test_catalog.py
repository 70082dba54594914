from contracts import Item
from state import CatalogStore, KeyValue


def test_upsert_get_and_text(kv: KeyValue) -> None:
    catalog = CatalogStore(kv)
    catalog.upsert(Item(item_id="a", title="Mug", brand="Kettleworks"))
    got = catalog.get("a")
    assert got is not None and got.title == "Mug"
    assert catalog.texts(["a", "missing"]) == ["Mug | Kettleworks", ""]
    assert len(catalog) == 1


def test_new_version_replaces_and_deleted_flag_removes(kv: KeyValue) -> None:
    catalog = CatalogStore(kv)
    catalog.upsert(Item(item_id="a", title="Mug"))
    catalog.upsert(Item(item_id="a", title="Big mug"))
    assert catalog.text("a") == "Big mug"
    catalog.upsert(Item(item_id="a", title="Big mug", deleted=True))
    assert catalog.get("a") is None
    catalog.delete("never-there")  # deleting an unknown item is not an error


def test_cached_reads_follow_updates_and_deletes(kv: KeyValue) -> None:
    catalog = CatalogStore(kv, cached_items=2)
    catalog.upsert(Item(item_id="a", title="Mug"))
    first = catalog.get("a")
    assert catalog.get("a") is first  # served decoded from the cache
    catalog.upsert(Item(item_id="a", title="Big mug"))
    assert catalog.text("a") == "Big mug"  # an update drops the cached copy
    for item_id in ("b", "c"):
        catalog.upsert(Item(item_id=item_id, title=item_id.upper()))
        catalog.get(item_id)
    assert catalog.text("a") == "Big mug"  # evicted (bound 2), read again from the store
    catalog.delete("a")
    assert catalog.get("a") is None


def test_no_cache_reads_the_store_every_time(kv: KeyValue) -> None:
    catalog = CatalogStore(kv, cached_items=0)
    catalog.upsert(Item(item_id="a", title="Mug"))
    assert catalog.get("a") is not catalog.get("a")
