"""Text about a frame, generated from its ground truth: alt-text captions, relation captions, hard negatives.

- ``alt_text``: what a web caption of a dashcam photo might say (a few facts in random order); base
  CLIP pretrains on these.
- ``relation_captions``: subject-relation-object sentences, SA-CLIP's training signal. Two kinds: the
  scene graph's own triplets ("a car is following a truck") and each object's place and motion
  relative to the camera's road ("a car is coming towards us on the other side of the road").
- ``hard_negative``: the same sentence made false by swapping subject and object, flipping the
  relation, or changing the place or motion, as SA-CLIP trains and the relation test scores.

The anomaly prompts in ``models.vocab`` are written in the grammar of the relation captions, so that
an anomaly type never shown in training ("a pedestrian is on our side of the road") is a new
combination of words the model has seen in other combinations. No caption, true or negative, states
a held-out type's situation (``withheld``): a held-out prompt used as a hard negative would teach the
model that very sentence.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection

from models.vocab import ASPECT_PHRASES, HELD_OUT_TYPES
from sim.local_scene import INCIDENT_TRACKS
from sim.truth import FrameTruth, ObjectTruth

ZERO_SHOT_TEMPLATE = "a dashcam photo of {}."

# Anomaly types as alt text mentions them (held-out types never reach alt text: see dataset.py).
ANOMALY_PHRASES = {
    "collision": "a collision ahead",
    "stopped_vehicle": "a stopped vehicle ahead",
    "obstacle": "an obstacle on the road",
    "pedestrian_in_lane": "a pedestrian on the road",
    "wrong_way": "a wrong way driver",
}

VERBS = {
    "in front of": "is in front of",
    "left of": "is left of",
    "right of": "is right of",
    "following": "is following",
    "crossing": "is crossing in front of",
    "passing": "is passing",
    "collides with": "collides with",
}
# The predicate that makes a true triplet false without changing its objects.
FLIPPED = {
    "in front of": "following",
    "following": "in front of",
    "left of": "right of",
    "right of": "left of",
    "passing": "following",
    "crossing": "following",
    "collides with": "following",
}

OUR_SIDE, OTHER_SIDE, BESIDE = "on our side of the road", "on the other side of the road", "beside the road"
AWAY, TOWARDS, STANDING, ACROSS = "moving away", "coming towards us", "standing", "moving across"
OTHER_PLACE = {OUR_SIDE: OTHER_SIDE, OTHER_SIDE: OUR_SIDE, BESIDE: OUR_SIDE}
OTHER_MOTION = {AWAY: TOWARDS, TOWARDS: AWAY, STANDING: AWAY, ACROSS: STANDING}
CLEAR_ROAD = "the road ahead is clear"


def article(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def noun(o: ObjectTruth) -> str:
    """The object as captions name it; vehicles with hazard lights on say so."""
    return f"{o.cls} with hazard lights" if o.state == "hazard" else o.cls


def place(o: ObjectTruth, frame: FrameTruth) -> str:
    """Where the object is relative to the camera's carriageway."""
    road = frame.road
    if not road.right_edge_y <= o.y_m <= road.left_edge_y:
        return BESIDE
    return OTHER_SIDE if o.y_m > road.centre_line_y else OUR_SIDE


def motion(o: ObjectTruth) -> str:
    """How the object moves relative to the camera's heading."""
    if o.speed_mps < 0.5:
        return STANDING
    heading = o.heading_deg % 360
    if heading < 45 or heading > 315:
        return AWAY
    return TOWARDS if 135 < heading < 225 else ACROSS


# The ego facts (noun, place, motion or None) that show each anomaly type the zero-shot test scores.
ANOMALY_FACTS: dict[str, Callable[[str, str, str | None], bool]] = {
    "pedestrian_in_lane": lambda n, where, how: n == "pedestrian" and where == OUR_SIDE,
    "wrong_way": lambda n, where, how: n.split()[0] in ("car", "truck", "bus") and where == OUR_SIDE and how == TOWARDS,
}


def withheld(n: str, where: str, how: str | None) -> bool:
    """Whether an ego fact shows a held-out anomaly type (in any wording): never training text."""
    return any(ANOMALY_FACTS[t](n, where, how) for t in HELD_OUT_TYPES)


def ego_caption(cls: str, where: str, how: str | None) -> str:
    """ "a car is coming towards us on our side of the road"; ``how`` None leaves the motion out."""
    return f"{article(cls)} is {how + ' ' if how else ''}{where}"


def triplet_caption(subject: str, predicate: str, obj: str) -> str:
    return f"{article(subject)} {VERBS[predicate]} {article(obj)}"


NOUNS = ("car", "truck", "bus", "cyclist", "pedestrian", "obstacle")


def relation_captions(frame: FrameTruth, grounded: Collection[str] | None = None) -> list[tuple[str, str]]:
    """Every true relation sentence of the frame with one hard negative each: [(true, false)].

    The negative is the first of these that is false of the frame: subject and object swapped (or
    the predicate flipped), the motion or place flipped, then another object class. A vehicle with
    hazard lights standing on our side, when nothing collides, gets "a car collides with a car" as its
    negative: the one difference between a stopped vehicle and a crash the model must learn.
    With ``grounded`` (sentences true of some training image), a negative must also be one of them,
    so that telling it from the true sentence takes the image and not a prior over sentences; a
    sentence with no such negative is left out.
    """
    return sorted((true, negative) for true, (negative, _) in _caption_pairs(frame, grounded).items())


def incident_captions(frame: FrameTruth, grounded: Collection[str] | None = None) -> list[tuple[str, str]]:
    """The relation captions (with their negatives) that are about the frame's incident objects."""
    pairs = _caption_pairs(frame, grounded)
    return sorted((true, negative) for true, (negative, incident) in pairs.items() if incident)


def true_relations(frames: list[FrameTruth]) -> set[str]:
    """Every relation sentence true of some frame of ``frames`` (the grounded negatives of training)."""
    return {true for frame in frames for true in _caption_pairs(frame)}


def _caption_pairs(frame: FrameTruth, grounded: Collection[str] | None = None) -> dict[str, tuple[str, bool]]:
    """true sentence -> (its hard negative, whether the sentence is about an incident object)."""
    by_track = {o.track_id: o for o in frame.objects}
    triplets: dict[tuple[str, str, str], bool] = {}
    for subject, predicate, obj in frame.relations:
        if subject in by_track and obj in by_track:
            key = (by_track[subject].cls, predicate, by_track[obj].cls)
            triplets[key] = triplets.get(key, False) or _incident(subject) or _incident(obj)
    facts: dict[tuple[str, str, str], bool] = {}
    for thing in frame.objects:
        if thing.cls != "traffic light":
            fact = (noun(thing), place(thing, frame), motion(thing))
            facts[fact] = facts.get(fact, False) or _incident(thing.track_id)
    collides = any(p == "collides with" for _, p, _ in triplets)

    def is_true(n: str, where: str, how: str | None) -> bool:
        return any(f[0] == n and f[1] == where and how in (None, f[2]) for f in facts)

    def allowed(sentence: str) -> bool:
        return grounded is None or sentence in grounded

    pairs: dict[str, tuple[str, bool]] = {}
    for (s, p, o), incident in sorted(triplets.items()):
        options = [(o, p, s), (s, FLIPPED[p], o), *((c, p, o) for c in NOUNS if c != s)]
        negative = next((t for t in options if t not in triplets and allowed(triplet_caption(*t))), None)
        if negative is not None:
            pairs[triplet_caption(s, p, o)] = (triplet_caption(*negative), incident)
    for (n, where, how), incident in sorted(facts.items()):
        others = [(c, where) for c in NOUNS if c != n]
        ego_options: dict[tuple[str, str, str | None], list[tuple[str, str, str | None]]] = {
            (n, where, None): [(n, OTHER_PLACE[where], None), *((c, w, None) for c, w in others)],
            (n, where, how): [
                (n, where, OTHER_MOTION[how]),
                (n, OTHER_PLACE[where], how),
                *((c, w, how) for c, w in others),
            ],
        }
        for (cn, cw, ch), candidates in ego_options.items():
            if cn.startswith("obstacle") and ch is not None:
                continue  # obstacles do not move: their captions say only where they are
            crash = triplet_caption("car", "collides with", "car")
            if ch == STANDING and cw == OUR_SIDE and cn.endswith("hazard lights") and not collides and allowed(crash):
                pairs[ego_caption(cn, cw, ch)] = (crash, incident)
                continue
            negative_ego = next(
                (t for t in candidates if not is_true(*t) and not withheld(*t) and allowed(ego_caption(*t))), None
            )
            if negative_ego is not None:
                pairs[ego_caption(cn, cw, ch)] = (ego_caption(*negative_ego), incident)
    if not any(w == OUR_SIDE for _, w, _ in facts) and allowed(ego_caption("car", OUR_SIDE, None)):
        pairs[CLEAR_ROAD] = (ego_caption("car", OUR_SIDE, None), False)
    return pairs


def _incident(track_id: int) -> bool:
    return track_id >= INCIDENT_TRACKS


def alt_text(frame: FrameTruth, rng: random.Random, facts: int = 3) -> str:
    """A web-style caption: ``facts`` things true of the frame, picked and ordered at random."""
    pool = [ASPECT_PHRASES[a][c] for a, c in frame.aspects.items()]
    counts: dict[str, int] = {}
    for o in frame.objects:
        counts[o.cls] = counts.get(o.cls, 0) + 1
    pool += [
        article(c) if n == 1 else f"{'two' if n == 2 else 'several'} {c}{'es' if c.endswith('s') else 's'}"
        for c, n in counts.items()
    ]
    if frame.anomaly:
        pool += [ANOMALY_PHRASES[frame.anomaly]] * 2
    relations = relation_captions(frame)
    if relations:
        pool.append(rng.choice(relations)[0])
    chosen = rng.sample(pool, min(facts, len(pool)))
    return ZERO_SHOT_TEMPLATE.format(", ".join(chosen[:-1]) + (" and " if len(chosen) > 1 else "") + chosen[-1])
