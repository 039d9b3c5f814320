"""Public mode, engine side (no Gradio): owners in the gallery, limits, the fair queue, the settings."""

from __future__ import annotations

import threading
import time
import zipfile

import pytest

from studio.config import settings_from
from studio.errors import InvalidRequest, StudioError
from studio.public import FairQueue, Limits, OverLimit, owner_from, session_owner, visitor_owner
from tests.conftest import png_files
from tests.gallery.conftest import image, request

A, B = visitor_owner("a" * 32), visitor_owner("b" * 32)


def _saved(sink, entry, owner, prompt, seed):
    return sink.save(request(prompt, seed=seed), [image()], [seed], entry=entry, timings={}, owner=owner)[0].image_id


def test_each_owner_sees_searches_exports_and_deletes_only_its_own(sink, entry, store, tmp_path):
    a = _saved(sink, entry, A, "a red cat", 1)
    b = _saved(sink, entry, B, "a red dog", 2)
    local = _saved(sink, entry, None, "a red fox", 3)
    store.set_tags(a, ["mine"], owner=A)
    store.set_tags(b, ["secret-of-b"], owner=B)
    assert [r.id for r in store.search(text="red", owner=A).items] == [a]
    assert store.search(owner=B).total == 1 and store.count(owner=A) == 1
    assert {r.id for r in store.search(text="red").items} == {a, b, local}        # a local studio: every row
    assert store.tag_names(owner=A) == ["mine"] and store.tag_names() == ["mine", "secret-of-b"]
    assert store.get(b, owner=A) is None and store.get(b, owner=B).id == b
    # another owner's id answers exactly as an id never made: not found, never "forbidden"
    for call in (lambda i: store.request_of(i, owner=A), lambda i: store.set_favourite(i, owner=A),
                 lambda i: store.set_tags(i, ["x"], owner=A)):
        with pytest.raises(InvalidRequest) as theirs:
            call(b)
        with pytest.raises(InvalidRequest) as none:
            call(99999)
        assert str(theirs.value) == str(none.value).replace("99999", str(b))
    assert store.delete([b, local], owner=A) == 0 and store.count() == 3
    zipped = store.export_zip([a, b], tmp_path / "a.zip", owner=A)
    with zipfile.ZipFile(zipped) as z:
        names = z.namelist()
        meta = z.read("metadata.json").decode()
    assert len([n for n in names if n.endswith(".png")]) == 1 and "dog" not in meta
    assert str(store.outputs_dir) not in meta                   # no server paths in a visitor's export
    stored_b = store.stored_path(store.get(b).path)
    assert store.owns_file(B, stored_b) and not store.owns_file(A, stored_b)
    assert store.delete([a, b], owner=A) == 1 and store.get(b) is not None and store.get(a) is None


def test_migration_0006_leaves_existing_rows_without_an_owner(tmp_path, sink, entry):
    from alembic import command

    from studio.gallery import db as gallery_db
    from studio.gallery.store import GalleryStore

    outputs = tmp_path / "old"
    with GalleryStore(outputs) as store:
        cfg = gallery_db.alembic_config()
        with store.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0005")
        with store.engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO images (created_at, path, sha256, task, model_id, prompt, width, height,"
                                 " source, favourite, missing, lora_names, tags, loras, controls, timings, infotext,"
                                 " negative_prompt, model_source, model_revision, scheduler) VALUES ('2026-01-01',"
                                 " 'x.png', 'ab', 'txt2img', 'm', 'old', 8, 8, 'studio', 0, 1, '', '', '[]', '[]',"
                                 " '{}', '', '', '', '', '')")
    with GalleryStore(outputs, reconcile=False) as store:
        assert (store.migration.before, store.migration.after) == ("0005", "0006")
        [old] = store.search(missing=True).items
        assert old.owner is None and store.search(owner=A, missing=True).total == 0


def test_limits_name_the_limit_and_its_flag():
    limits = Limits(max_size=512, max_steps=20, max_images=2, max_queue=1)
    limits.check(request(width=512, height=512, steps=20, batch_count=2))
    cases = {"width": dict(width=768), "steps": dict(steps=21), "batch": dict(batch_count=2, batch_size=2)}
    for name, kw in cases.items():
        with pytest.raises(OverLimit) as err:
            limits.check(request(**kw))
        assert str(err.value).startswith(f"{name}:") and "limit" in str(err.value) and "--max-" in str(err.value)
    with pytest.raises(OverLimit, match="steps: 28 is over"):      # left to the model: its default is checked
        limits.check(request(steps=None), default_steps=28)


def test_over_limit_requests_write_nothing(make_studio):
    studio = make_studio(public=True, max_steps=3, max_size=64, max_images=2)
    store = studio.sink.store
    base = dict(model_id="tiny-random", width=64, height=64, steps=2, seed=1)
    from studio.requests import GenerationRequest

    for over in (dict(steps=4), dict(width=128), dict(batch_size=3)):
        with pytest.raises(OverLimit):
            studio.generate(GenerationRequest("a cat", **{**base, **over}), owner=A)
    with pytest.raises(InvalidRequest, match="session"):
        studio.generate(GenerationRequest("a cat", **base))              # public: no owner, no image
    assert store.count() == 0 and png_files(store.outputs_dir) == []
    saved = studio.generate(GenerationRequest("a cat", **base), owner=A).saved
    assert store.get(saved[0].image_id, owner=A) is not None and store.get(saved[0].image_id, owner=B) is None


def test_a_flood_from_one_visitor_does_not_starve_another():
    """Visitor A queues 5 jobs, then B queues 1: B is served before A's 5th (second, in fact)."""
    queue = FairQueue(slots=1, max_queue=5)
    order: list[str] = []
    gate = threading.Event()

    def job(owner: str, name: str) -> None:
        with queue.turn(owner):
            order.append(name)
            gate.wait(5)

    threads = [threading.Thread(target=job, args=(A, f"A{i}")) for i in range(1, 6)]
    for t in threads:
        t.start()
        while queue.waiting() + len(order) < threads.index(t) + 1:
            time.sleep(0.01)                    # A's jobs arrive in order
    late = threading.Thread(target=job, args=(B, "B1"))
    late.start()
    while queue.waiting() < 5:
        time.sleep(0.01)
    gate.set()
    for t in (*threads, late):
        t.join(10)
    assert order.index("B1") < order.index("A5")
    assert order[:2] == ["A1", "B1"] and order[2:] == ["A2", "A3", "A4", "A5"]


def test_a_waiting_job_hears_how_many_go_first_then_its_turn():
    queue, heard = FairQueue(slots=1, max_queue=2), []
    def wait() -> None:
        with queue.turn(B, on_wait=heard.append):
            pass

    with queue.turn(A):
        waiter = threading.Thread(target=wait)
        waiter.start()
        while not heard:
            time.sleep(0.01)
    waiter.join(5)
    assert heard == [1, 0]


def test_the_queue_limit_refuses_at_once_and_frees_on_finish():
    queue = FairQueue(slots=1, max_queue=1)
    with queue.turn(A):
        with pytest.raises(OverLimit, match="queue: you already have 1"):
            with queue.turn(A):
                pass
    with queue.turn(A):                         # the first one finished: room again
        pass


def test_owner_is_the_visitor_cookie_else_the_session():
    assert owner_from("t" * 32, "s1") == visitor_owner("t" * 32) != owner_from(None, "s1") == session_owner("s1")
    assert owner_from("bad cookie;", "s1") == session_owner("s1")
    with pytest.raises(InvalidRequest, match="session"):
        owner_from(None, None)


def test_public_mode_settings():
    assert not settings_from([], {}).public
    assert settings_from([], {"SPACE_ID": "me/studio"}).public
    assert not settings_from(["--auth", "u:p"], {"SPACE_ID": "me/studio"}).public
    assert not settings_from([], {"SPACE_ID": "me/studio", "STUDIO_PUBLIC": "0"}).public
    on = settings_from(["--public", "--max-steps", "8"], {"STUDIO_MAX_QUEUE": "3", "STUDIO_MAX_SIZE": "512"})
    assert on.public and on.limits == Limits(max_size=512, max_steps=8, max_images=4, max_queue=3)
    assert not on.imports_allowed and not settings_from(["--public", "--allow-import-paths"], {}).imports_allowed
    with pytest.raises(InvalidRequest, match="max_steps"):
        settings_from(["--max-steps", "0"], {})


def test_through_the_studio_a_second_visitor_is_served_before_the_first_visitors_fifth_job(make_studio):
    """Five generations from A are waiting (the GPU busy), then one from B: B's image is made second."""
    from studio.requests import GenerationRequest

    studio = make_studio(public=True, max_queue=5)
    queue, store = studio.public.queue, studio.sink.store
    made: dict[str, int] = {}

    def generate(owner: str, name: str) -> None:
        result = studio.generate(GenerationRequest(name, model_id="tiny-random", width=64, height=64, steps=1,
                                                   seed=1), owner=owner)
        made[name] = result.saved[0].image_id

    jobs = [threading.Thread(target=generate, args=(A, f"A{i}")) for i in range(1, 6)]
    with queue.turn("another job on the GPU"):
        for n, job in enumerate(jobs, 1):
            job.start()
            while queue.waiting() < n:
                time.sleep(0.01)
        late = threading.Thread(target=generate, args=(B, "B1"))
        late.start()
        while queue.waiting() < 6:
            time.sleep(0.01)
    for job in (*jobs, late):
        job.join(60)
    order = sorted(made, key=made.get)
    assert order.index("B1") < order.index("A5") and order[:2] == ["A1", "B1"]
    assert [r.id for r in store.search(owner=B).items] == [made["B1"]]


def test_the_visitor_cookie_and_the_file_rule_by_owner(tmp_path):
    from studio.ui import serving

    image = tmp_path / "txt2img" / "00001-7.png"
    image.parent.mkdir()
    image.write_bytes(b"png")
    mine = {"txt2img/00001-7.png"}
    assert serving.may_serve(str(image), tmp_path, [], owns=mine.__contains__)
    assert not serving.may_serve(str(image), tmp_path, [], owns=set().__contains__)
    assert serving.may_serve(str(image), tmp_path, [])                                  # a local studio
    token = "t" * 32
    scope = {"type": "http", "headers": [(b"cookie", f"x=1; {serving.COOKIE}={token}".encode())]}
    assert serving.visitor_token(scope) == token
    assert serving.visitor_token({"headers": [(b"cookie", f"{serving.COOKIE}=short".encode())]}) is None
    assert b"SameSite=None; Secure; Partitioned" in serving.set_cookie_header(token, https=True)   # a Space's iframe
    assert b"SameSite=Lax" in serving.set_cookie_header(token, https=False)
    assert serving._https({"scheme": "http", "headers": [(b"x-forwarded-proto", b"https")]})


def test_in_public_mode_no_net_or_adapter_is_named_by_a_path_on_the_server(tiny_models_dir, tmp_path):
    from studio.config import Settings
    from studio.errors import ModelUnavailable
    from studio.models.registry import Registry

    folder = tmp_path / "some-folder-on-the-server"
    folder.mkdir()
    for public in (False, True):
        registry = Registry(Settings(models_dir=tiny_models_dir, outputs_dir=tmp_path / "out", offline=True,
                                     public=public))
        entry = registry.require("tiny-flux")
        if public:
            with pytest.raises(ModelUnavailable, match="not found"):
                registry.controlnet(str(folder), entry, "canny")
            with pytest.raises(ModelUnavailable, match="not found"):
                registry.ip_adapter(str(folder), entry)
        else:
            with pytest.raises(InvalidRequest, match="not a ControlNet"):     # found, then refused as no net
                registry.controlnet(str(folder), entry, "canny")
            with pytest.raises(StudioError) as err:                            # found, then refused: no adapter
                registry.ip_adapter(str(folder), entry)
            assert "not found" not in str(err.value)


def test_in_public_mode_messages_name_no_folder_of_the_server(tiny_models_dir, tmp_path):
    from studio.config import Settings
    from studio.errors import ModelUnavailable
    from studio.models.registry import Registry

    registry = Registry(Settings(models_dir=tiny_models_dir, outputs_dir=tmp_path / "out", offline=True, public=True))
    entry = registry.require("tiny-flux")
    for call in (lambda: registry.controlnet("no-such-net", entry, "canny"),
                 lambda: registry.ip_adapter("no-such-adapter", entry),
                 lambda: registry.lora_library.resolve("no-such-lora", None)):
        with pytest.raises(ModelUnavailable) as err:
            call()
        assert str(tiny_models_dir) not in str(err.value) and "models/" in str(err.value)


def test_the_start_up_warning_of_a_public_studio_names_its_limits():
    from studio.startup import exposure_warning

    line = exposure_warning(settings_from(["--listen", "--public", "--max-steps", "9"], {}))
    assert "public mode" in line and "--max-steps 9" in line and "delete" not in line
