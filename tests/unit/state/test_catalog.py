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
