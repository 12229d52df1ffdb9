from audit import display
from audit.tests.factories import ResultFactory


def hit(label, *spans, context=None):
    positions = [{"startPos": a, "endPos": b} for a, b in spans]
    return {"label": label, "contexts": [{"context": context or "", "positions": positions}]}


def scene(*details):
    return [
        {
            "scene": "antispam",
            "label": "x",
            "suggestion": "block",
            "rate": 9,
            "details": list(details),
        }
    ]


def test_segments_cover_the_text_with_hits_marked():
    text = "buy pills now"
    segments = display.text_segments(text, scene(hit("contraband", (4, 9))))
    assert [(s.text, s.label) for s in segments] == [
        ("buy ", None),
        ("pills", "contraband"),
        (" now", None),
    ]
    assert "".join(s.text for s in segments) == text


def test_positions_outside_the_text_or_overlapping_are_ignored():
    text = "abcdef"
    segments = display.text_segments(text, scene(hit("a", (0, 3), (2, 5), (4, 99), (3, 3))))
    assert [(s.text, s.label) for s in segments] == [("abc", "a"), ("def", None)]


def test_a_context_without_positions_marks_every_occurrence():
    segments = display.text_segments("spam and spam", scene(hit("spam", context="spam")))
    assert [s.label for s in segments] == ["spam", None, "spam"]


def test_video_frames_merge_frame_results_and_scene_frames(db):
    result = ResultFactory.build(
        media_type="video",
        frames=[
            {"offset": 0, "results": [{"scene": "porn", "label": "normal", "rate": 90}]},
            {"offset": 5},
        ],
        scene_results=[
            {
                "scene": "porn",
                "label": "porn",
                "suggestion": "block",
                "rate": 99,
                "frames": [{"offset": 5, "label": "porn", "rate": 99}],
            }
        ],
    )
    frames = display.video_frames(result)
    assert [f.offset for f in frames] == [0.0, 5.0]
    assert frames[0].flags == [] and frames[1].flags[0]["label"] == "porn"
