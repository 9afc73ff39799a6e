"""The studio's JSON API (`ganforge serve`, ganforge.app): every endpoint, its limits and its
errors, through FastAPI's TestClient; the bounded work queue; the command's start-up errors.

Runs are tiny (one training step, 16 px): these tests are about the plumbing (what is sent
back, what is refused and how), not about image quality.
"""
from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

import ganforge
from ganforge.app import Limits, QueueFull, WorkQueue, create_app, load_runs
from ganforge.app import runs as runs_module
from ganforge.cli import main
from ganforge.cli.serve import is_loopback, listen
from ganforge.errors import CheckpointError, ConfigError
from ganforge.imageio import grid
from ganforge.inference.latent import interpolate
from helpers import error_line

QUIET = {"log.progress": False, "log.tensorboard": "no", "train.steps": 1, "data.resolution": 16,
         "train.batch_size": 4}
DCGAN = {"model.g_width": 4, "model.d_width": 4, "model.latent_dim": 8}
SMALL_D = {"model.d_width": 4, "model.d_layers": 1}
RUNS = {  # name -> overrides; "PICTURES" becomes a folder of synthetic photos
    "digits": DCGAN,
    "cond": {**DCGAN, "model.conditional": True},
    "inpaint": {"task": "inpaint", "model.g_width": 4, "model.depth": 2, **SMALL_D},
    "replace": {"task": "replace", "model.g_width": 4, "model.depth": 2, **SMALL_D},
    "sr": {"task": "super-resolve", "data.degrade": "downscale:2", "model.n_blocks": 1, "model.width": 4,
           "data.name": "PICTURES", **SMALL_D},
    "cyclegan": {"task": "translate", "model.blocks": 1, "model.g_width": 4, "train.batch_size": 2,
                 "objective.pool_size": 3, **SMALL_D},
}
SERVED = ["digits", "cond", "inpaint", "sr", "cyclegan", "replace"]
EVAL = {"model": {"fid": 12.5, "recall": 0.25}, "floor": {"fid": 0.5, "recall": 0.75}, "setup": {"images": 100}}
PAD = 2  # grid padding (ganforge.imageio.grid)


def build_studio_runs(root: Path) -> dict[str, Path]:
    """Tiny runs of every kind the studio serves, trained once per test session (a finished
    set is marked by root/done and reused), plus one run that is never served."""
    dirs = {name: root / name for name in [*RUNS, "unserved"]}
    if (root / "done").exists():
        return dirs
    pictures = root / "pictures" / "train"
    pictures.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)).save(pictures / f"{i}.png")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as conftest's one_thread, which starts after session fixtures
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GANFORGE_CACHE", str(root / "cache"))
        for name, overrides in [*RUNS.items(), ("unserved", DCGAN)]:
            overrides = {key: f"patches:{pictures.parent}" if value == "PICTURES" else value
                         for key, value in overrides.items()}
            ganforge.train(overrides={**QUIET, **overrides, "out": str(dirs[name])})
    torch.set_num_threads(threads)
    (dirs["digits"] / "eval.json").write_text(json.dumps(EVAL))
    (root / "done").touch()
    return dirs


@pytest.fixture(scope="session")
def run_dirs(tmp_path_factory) -> dict[str, Path]:
    return build_studio_runs(tmp_path_factory.getbasetemp() / "studio-runs")


@pytest.fixture(scope="module")
def served(run_dirs):
    return load_runs([run_dirs[name] for name in SERVED])


@pytest.fixture(scope="module")
def client(served):
    with TestClient(create_app(served)) as test_client:
        yield test_client


def png(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format="PNG")
    return buffer.getvalue()


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def photo(height: int = 23, width: int = 37, channels: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (height, width) if channels == 1 else (height, width, channels)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def hole(height: int = 23, width: int = 37, box=(5, 4, 10, 8)) -> np.ndarray:
    x, y, w, h = box
    mask = np.zeros((height, width), np.uint8)
    mask[y:y + h, x:x + w] = 255
    return mask


def edit(client, run: str, image: bytes, mask: bytes | None = None, **fields):
    files = {"image": ("in.png", image, "image/png")}
    if mask is not None:
        files["mask"] = ("mask.png", mask, "image/png")
    return client.post(f"/api/runs/{run}/edit", files=files, data=fields)


def assert_error(response, status: int, *words: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    message = response.json()["error"]
    for word in words:
        assert word in message, message
    return message


# 1. Runs: listing, details, evaluation; addressed by name or index, never by path.
def test_runs_are_listed_with_what_their_page_needs(client, run_dirs):
    response = client.get("/api/runs")
    assert response.status_code == 200
    runs = response.json()["runs"]
    assert [run["name"] for run in runs] == SERVED
    kinds = {run["name"]: (run["kind"], run["task"]) for run in runs}
    assert kinds == {"digits": ("generate", "generate"), "cond": ("generate", "generate"),
                     "inpaint": ("edit", "inpaint"), "sr": ("edit", "super-resolve"),
                     "cyclegan": ("translate", "translate"), "replace": ("edit", "replace")}
    by_name = {run["name"]: run for run in runs}
    assert by_name["cond"]["num_classes"] == 10 and by_name["digits"]["num_classes"] == 0
    assert by_name["digits"]["resolution"] == 16
    assert by_name["inpaint"]["needs_mask"] and not by_name["inpaint"]["needs_class"]
    assert by_name["sr"]["scale"] == 2 and not by_name["sr"]["needs_mask"]
    assert set(by_name["cyclegan"]["directions"]) == {"a2b", "b2a"}
    assert by_name["replace"]["needs_mask"] and by_name["replace"]["needs_class"]
    assert str(run_dirs["digits"].parent) not in response.text  # no server paths leak


def test_a_run_is_found_by_name_or_index_with_its_evaluation(client):
    by_name = client.get("/api/runs/digits").json()
    assert by_name["eval"] == EVAL and by_name["has_eval"]
    assert client.get("/api/runs/0").json() == by_name
    assert client.get("/api/runs/1").json()["name"] == "cond"
    assert client.get("/api/runs/digits/eval").json() == EVAL
    assert_error(client.get("/api/runs/cond/eval"), 404, "no evaluation", "ganforge evaluate")
    assert client.get("/api/runs/cond").json()["eval"] is None


@pytest.mark.parametrize("key", ["nope", str(len(SERVED)), "-1", "..", "%2E%2E%2Funserved", "%2Fetc%2Fpasswd"])
def test_unknown_runs_are_404(client, key):
    assert_error(client.get(f"/api/runs/{key}"), 404)
    assert_error(client.get(f"/api/runs/{key}/sample"), 404)


def test_a_client_supplied_path_is_never_loaded(client, run_dirs, monkeypatch):
    """A real run directory that was not named at start stays out of reach, and no request
    loads anything: the loader is broken for the rest of this test."""
    def refuse(*args, **kwargs):
        raise AssertionError("a request loaded a run")

    monkeypatch.setattr(runs_module, "load", refuse)
    monkeypatch.setattr(ganforge.inference, "load", refuse)
    unserved = str(run_dirs["unserved"].resolve())
    assert_error(client.get("/api/runs/unserved/sample"), 404, "serves digits, cond")
    for key in [unserved.replace("/", "%2F"), "..%2Funserved", "%2E%2E%2Funserved"]:
        assert_error(client.get(f"/api/runs/{key}/sample"), 404)
    assert client.get("/api/runs/digits/sample", params={"n": 1}).status_code == 200


# 2. Generation: grids and interpolation.
def test_a_grid_is_the_runs_samples_for_that_seed(client, served):
    response = client.get("/api/runs/digits/sample", params={"n": 9, "seed": 3})
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    expected = grid(served[0].model.sample(9, seed=3))[..., 0]
    np.testing.assert_array_equal(decode(response.content), expected)
    assert decode(response.content).shape == (3 * 16 + 4 * PAD,) * 2
    again = client.get("/api/runs/digits/sample", params={"n": 9, "seed": 3})
    other = client.get("/api/runs/digits/sample", params={"n": 9, "seed": 4})
    assert again.content == response.content and other.content != response.content


def test_class_truncation_and_rows(client, served, monkeypatch):
    model = served[1].model
    monkeypatch.setattr(model, "class_names", [f"c{i}" for i in range(10)])
    response = client.get("/api/runs/cond/sample", params={"n": 4, "seed": 1, "class": 7, "nrow": 4,
                                                            "truncation": 0.5})
    assert response.status_code == 200
    expected = grid(model.sample(4, seed=1, labels=[7] * 4, truncation=0.5), nrow=4)[..., 0]
    np.testing.assert_array_equal(decode(response.content), expected)
    by_name = client.get("/api/runs/cond/sample", params={"n": 4, "seed": 1, "class": "c7", "nrow": 4,
                                                          "truncation": 0.5})
    assert by_name.content == response.content
    best = client.get("/api/runs/cond/sample", params={"n": 4, "seed": 1, "class": 7, "nrow": 4,
                                                       "keep_best": 0.5})
    assert best.status_code == 200
    np.testing.assert_array_equal(decode(best.content), grid(model.sample(4, seed=1, labels=[7] * 4, keep_best=0.5),
                                                             nrow=4)[..., 0])
    assert_error(client.get("/api/runs/cond/sample", params={"class": 10}), 422, "outside 0..9")
    assert_error(client.get("/api/runs/cond/sample", params={"class": "c10"}), 422, "'c10'", "c0, c1")
    assert_error(client.get("/api/runs/digits/sample", params={"class": 1}), 422, "not class-conditional")


@pytest.mark.parametrize("params,words", [({"n": 65}, ["n", "64"]), ({"n": 0}, ["n"]),
                                          ({"truncation": 2.5}, ["truncation"]), ({"keep_best": 0}, ["keep_best"]),
                                          ({"seed": -1}, ["seed"]), ({"n": "many"}, ["n"])])
def test_sample_values_are_checked(client, params, words):
    message = assert_error(client.get("/api/runs/digits/sample", params=params), 422, *words)
    assert message.startswith(words[0])


def test_interpolation_runs_from_one_seed_to_the_other(client, served):
    response = client.get("/api/runs/digits/interpolate", params={"from": 2, "to": 5, "steps": 5})
    assert response.status_code == 200
    strip = decode(response.content)
    assert strip.shape == (16 + 2 * PAD, 5 * 16 + 6 * PAD)
    model = served[0].model
    first, last = model.sample(1, seed=2)[0, ..., 0], model.sample(1, seed=5)[0, ..., 0]
    np.testing.assert_allclose(strip[PAD:PAD + 16, PAD:PAD + 16], first, atol=1)
    np.testing.assert_allclose(strip[PAD:PAD + 16, -PAD - 16:-PAD], last, atol=1)
    conditional = client.get("/api/runs/cond/interpolate", params={"from": 1, "to": 1, "steps": 3,
                                                                   "class": 2, "class_to": 6})
    expected = interpolate(served[1].model.net, 1, 1, 3, 2, 6)
    np.testing.assert_array_equal(decode(conditional.content), grid(expected.permute(0, 2, 3, 1).numpy(), nrow=3)[..., 0])
    assert_error(client.get("/api/runs/digits/interpolate", params={"steps": 1}), 422, "steps")
    assert_error(client.get("/api/runs/digits/interpolate", params={"steps": 33}), 422, "steps", "32")


def test_each_endpoint_refuses_the_wrong_kind_of_run(client):
    assert_error(client.get("/api/runs/inpaint/sample"), 422, "is an editing run", "needs a generation run")
    assert_error(client.get("/api/runs/cyclegan/interpolate"), 422, "is a translation run")
    assert_error(edit(client, "digits", png(photo())), 422, "is a generation run",
                 "needs an editing or a translation run")


# 3. Editing and translation.
def test_inpainting_with_a_mask_matches_the_editor(client, served):
    image, mask = photo(), hole()
    response = edit(client, "inpaint", png(image), png(mask))
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    result = decode(response.content)
    expected = served[2].model.edit(image, mask=mask > 0)[..., 0]
    np.testing.assert_allclose(result, expected, atol=1)   # floats from /255 vs /127.5
    np.testing.assert_array_equal(result[mask == 0], image[mask == 0])  # outside the hole: untouched


def test_a_box_is_the_same_hole_as_its_mask(client):
    image = png(photo())
    by_mask = edit(client, "inpaint", image, png(hole(box=(5, 4, 10, 8))))
    by_box = edit(client, "inpaint", image, box="5,4,10,8")
    assert by_box.status_code == 200 and by_box.content == by_mask.content


def test_transparency_is_kept_and_a_transparent_mask_marks_the_hole(client):
    rgba = photo(channels=4)
    rgba[..., 3] = 200
    result = decode(edit(client, "inpaint", png(rgba, "RGBA"), box="1,1,4,4").content)
    assert result.shape == (23, 37, 2)                     # gray model + the upload's alpha
    assert (result[..., 1] == 200).all()
    erased = np.full((23, 37, 4), 255, np.uint8)
    erased[4:12, 5:15, 3] = 0                              # erased region = hole
    by_alpha = edit(client, "inpaint", png(photo()), png(erased, "RGBA"))
    assert by_alpha.content == edit(client, "inpaint", png(photo()), box="5,4,10,8").content


def test_replacement_draws_the_class_asked_for(client, served):
    image, mask = photo(), hole()
    editor = served[5].model
    by_index = edit(client, "replace", png(image), png(mask), **{"class": "3"})
    assert by_index.status_code == 200
    np.testing.assert_allclose(decode(by_index.content), editor.edit(image, mask=mask > 0, cls=3)[..., 0], atol=1)
    assert edit(client, "replace", png(image), png(mask), **{"class": "4"}).content != by_index.content
    assert_error(edit(client, "replace", png(image), png(mask)), 422, "draws a class", "give class")
    assert_error(edit(client, "replace", png(image), png(mask), **{"class": "10"}), 422, "outside 0..9")


def test_super_resolution_and_translation(client, served):
    image = photo(17, 21, channels=3)
    result = decode(edit(client, "sr", png(image)).content)
    assert result.shape == (34, 42, 3)
    np.testing.assert_allclose(result, served[3].model.edit(image), atol=1)
    for direction in ("a2b", "b2a"):
        response = edit(client, "cyclegan", png(image), direction=direction)
        assert response.status_code == 200
        np.testing.assert_allclose(decode(response.content), served[4].model.translate(image, direction), atol=1)
    assert edit(client, "cyclegan", png(image)).content == edit(client, "cyclegan", png(image), direction="a2b").content


@pytest.mark.parametrize("run,mask,fields,words", [
    ("inpaint", None, {}, ["fills a hole", "mask or a box"]),
    ("inpaint", hole(10, 10), {}, ["mask", "10x10", "37x23"]),
    ("inpaint", np.zeros((23, 37), np.uint8), {}, ["no hole"]),
    ("inpaint", hole(), {"box": "1,1,2,2"}, ["not both"]),
    ("inpaint", None, {"box": "30,1,10,2"}, ["does not fit", "37x23"]),
    ("inpaint", None, {"box": "1,2"}, ["x,y,w,h"]),
    ("inpaint", None, {"box": "1,1,2,2", "class": "3"}, ["not class-conditional"]),
    ("inpaint", None, {"box": "1,1,2,2", "direction": "a2b"}, ["not a translation run"]),
    ("sr", hole(), {}, ["takes no mask"]),
    ("cyclegan", None, {"direction": "sideways"}, ["sideways", "a2b or b2a"]),
    ("cyclegan", None, {"box": "1,1,2,2"}, ["whole images"]),
])
def test_edit_options_are_checked(client, run, mask, fields, words):
    assert_error(edit(client, run, png(photo()), None if mask is None else png(mask), **fields), 422, *words)


def test_uploads_that_are_not_images_are_422(client):
    assert_error(edit(client, "sr", b"not an image at all"), 422, "not an image")
    assert_error(edit(client, "sr", b""), 422, "empty")
    assert_error(edit(client, "inpaint", png(photo()), b"nope"), 422, "mask", "not an image")
    assert_error(client.post("/api/runs/sr/edit"), 422, "image")


# 4. Limits: request size, image sides, the work queue.
@pytest.fixture
def small_client(served):
    limits = Limits(max_upload_bytes=20_000, max_side=40)
    with TestClient(create_app(served, limits, workers=1, queue=1)) as test_client:
        yield test_client


def test_an_oversized_request_is_413_before_it_is_parsed(small_client):
    big = png(photo(40, 40, channels=3) * 0) + b"\0" * 25_000
    assert_error(edit(small_client, "sr", big), 413, "upload limit", "0.019", "--max-upload-mb")

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(30):
            yield b"x" * 1000

    response = small_client.post("/api/runs/sr/edit", content=chunks(),
                                 headers={"content-type": "application/octet-stream"})
    assert_error(response, 413, "upload limit")


def test_image_sides_are_capped_for_inputs_masks_and_results(small_client):
    assert_error(edit(small_client, "sr", png(photo(10, 41, channels=3))), 422, "10", "41", "40 px", "--max-side")
    assert_error(edit(small_client, "sr", png(photo(10, 21, channels=3))), 422, "42x20", "x2", "--max-side")
    assert edit(small_client, "sr", png(photo(10, 20, channels=3))).status_code == 200
    assert_error(edit(small_client, "inpaint", png(photo(10, 20)), png(hole(10, 41))), 422, "mask", "40 px")


def test_a_full_queue_answers_503_and_recovers(small_client):
    work = small_client.app.state.studio.work
    assert work.capacity == 2
    release = threading.Event()
    held = [work.submit(release.wait) for _ in range(2)]   # one running, one waiting
    try:
        for response in (small_client.get("/api/runs/digits/sample"),
                         edit(small_client, "inpaint", png(photo(10, 20)), box="1,1,2,2")):
            assert_error(response, 503, "queue is full", "try again")
            assert response.headers["retry-after"] == "1"
        stats = small_client.get("/api/health").json()["queue"]
        assert stats["rejected"] == 2 and stats["running"] + stats["waiting"] == 2
    finally:
        release.set()
    for future in held:
        future.result(timeout=10)
    assert small_client.get("/api/runs/digits/sample").status_code == 200


def test_the_work_queue_holds_its_capacity_and_frees_slots():
    work = WorkQueue(workers=1, size=2)
    release = threading.Event()
    futures = [work.submit(release.wait) for _ in range(3)]
    with pytest.raises(QueueFull, match="1 running, 2 waiting"):
        work.submit(int)
    release.set()
    assert all(f.result(timeout=10) for f in futures)
    failing = work.submit(int, "x")                          # an error frees its slot too
    with pytest.raises(ValueError):
        failing.result(timeout=10)
    assert [work.submit(int, "7").result(timeout=10) for _ in range(5)] == [7] * 5
    assert work.stats() == {"workers": 1, "size": 2, "running": 0, "waiting": 0, "done": 9, "rejected": 1}
    work.close()
    with pytest.raises(QueueFull, match="shutting down"):
        work.submit(int)
    with pytest.raises(ConfigError, match="--workers 0"):
        WorkQueue(workers=0)


# 5. The page, the schema, health, the report.
def test_the_page_and_its_files_load_nothing_from_elsewhere(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert '<script src="/static/studio.js"' in page.text
    for name in ("studio.js", "studio.css"):
        response = client.get(f"/static/{name}")
        assert response.status_code == 200 and len(response.text) > 1000
    static = Path(ganforge.app.__file__).with_name("static")
    for file in static.iterdir():
        text = file.read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, file.name
    assert client.get("/static/%2E%2E/server.py").status_code == 404


def test_openapi_lists_every_endpoint(client):
    schema = client.get("/openapi.json").json()
    assert set(schema["paths"]) == {"/api/health", "/api/runs", "/api/runs/{run}", "/api/runs/{run}/eval",
                                    "/api/runs/{run}/sample", "/api/runs/{run}/interpolate",
                                    "/api/runs/{run}/edit", "/api/runs/{run}/report"}
    assert "image/png" in schema["paths"]["/api/runs/{run}/sample"]["get"]["responses"]["200"]["content"]
    assert "503" in schema["paths"]["/api/runs/{run}/edit"]["post"]["responses"]
    for cdn_page in ("/docs", "/redoc"):  # FastAPI's would fetch scripts from a CDN
        assert client.get(cdn_page).status_code == 404


def test_health_reports_the_queue_and_limits(client):
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["runs"] == len(SERVED)
    assert health["limits"] == {"max_upload_mb": 8.0, "max_side": 2048, "max_n": 64, "max_steps": 32, "tile": 512}
    assert health["queue"]["workers"] == 1 and health["queue"]["size"] == 8


def test_the_report_is_the_runs_own_html(client):
    pytest.importorskip("ganforge.report", reason="ganforge.report is not in this tree yet")
    response = client.get("/api/runs/inpaint/report")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert response.text.lstrip().lower().startswith("<!doctype html")
    assert "inpaint" in response.text
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert_error(client.get("/api/runs/nope/report"), 404)


# 6. Loading runs and the command's start-up.
def test_run_names_are_unique_and_bad_runs_are_refused(run_dirs, tmp_path):
    runs = load_runs([run_dirs["digits"], run_dirs["digits"]])
    assert [run.name for run in runs] == ["digits", "digits-2"]
    with pytest.raises(CheckpointError, match="does not exist"):
        load_runs([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_runs([tmp_path / "empty"])


def test_serve_refuses_a_bad_run_before_binding(capsys, tmp_path, run_dirs):
    assert main(["serve", str(run_dirs["digits"]), str(tmp_path / "missing")]) == 2
    assert "does not exist" in error_line(capsys, "serve")
    assert main(["serve", str(run_dirs["digits"]), "--port", "70000"]) == 2
    assert "--port 70000" in error_line(capsys, "serve")
    assert main(["serve", str(run_dirs["digits"]), "--max-upload-mb", "0"]) == 2
    assert "--max-upload-mb" in error_line(capsys, "serve")


def test_a_taken_port_is_one_line_and_loopback_is_recognised(capsys, run_dirs):
    taken = listen("127.0.0.1", 0)
    taken.listen()
    try:
        port = taken.getsockname()[1]
        assert main(["serve", str(run_dirs["digits"]), "--port", str(port)]) == 2
        assert f"cannot listen on 127.0.0.1:{port}" in error_line(capsys, "serve")
    finally:
        taken.close()
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2") and not is_loopback("example.org")


def test_serve_binds_where_asked_and_warns_off_loopback(capsys, run_dirs, monkeypatch):
    """`ganforge serve` up to the point where uvicorn would take over (its run is replaced)."""
    import uvicorn
    started = {}

    def run(server, sockets):
        started.update(config=server.config, sockets=sockets)

    monkeypatch.setattr(uvicorn.Server, "run", run)
    assert main(["serve", str(run_dirs["digits"]), str(run_dirs["inpaint"]), "--host", "0.0.0.0",
                 "--port", "0", "--workers", "2", "--queue", "3"]) == 0
    (sock,) = started["sockets"]
    try:
        host, port = sock.getsockname()[:2]
        assert host == "0.0.0.0" and port > 0
    finally:
        sock.close()
    out, err = capsys.readouterr()
    assert f"http://0.0.0.0:{port}/ serving digits, inpaint" in out
    assert "warning: listening on 0.0.0.0" in err and "no authentication" in err
    assert started["config"].limit_concurrency == 2 * (2 + 3) + 16
    assert started["config"].app.state.studio.work.capacity == 5
    assert main(["serve", str(run_dirs["digits"]), "--port", "0", "--workers", "0"]) == 2
    assert "--workers 0" in error_line(capsys, "serve")
