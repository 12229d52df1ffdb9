"""Stored results in the scan API's v1 task shape: what /green/<type>/scan, /results and the
Alibaba-form callbacks answer."""

from audit import scanning
from audit.models import FetchStatus, MediaType, Result, VerdictSource
from green.models import AsyncImageScan, AsyncImageScanStatus

# Verdicts a human gave (directly, by propagation, or through a sample): answered as such.
HUMAN_SOURCES = frozenset({VerdictSource.HUMAN, VerdictSource.PROPAGATED})
DOWNLOAD_FAILED = (480, "DOWNLOAD_FAILED")  # dns, connection, redirects
# A task that could not be scanned, by audit.scanning's error code: Alibaba's code and msg.
TASK_ERRORS = {
    "invalid_url": (400, "BAD_REQUEST"),
    "blocked_address": (401, "NOT_ALLOWED"),
    "bad_status": (404, "NOT_FOUND"),
    "timeout": (592, "DOWNLOAD_TIMEOUT"),
    "too_large": (589, "TOO_LARGE"),
    "bad_content_type": (590, "BAD_FORMAT"),
    "bad_media": (590, "BAD_FORMAT"),
}


def result_answer(result: Result, scenes: list[str]) -> dict:
    """A stored result in the v1 task shape, with the human verdict once there is one."""
    return _task(result, scene_answers(result, scenes))


def machine_answer(result: Result) -> dict:
    """The v1 task shape with the machine's scene results, whatever a human decided since."""
    return _task(result, result.scene_results)


def polled_answer(task_id: str, result: Result | None) -> dict:
    """What /green/<type>/results answers for one taskId (and an async scan's callback)."""
    if result is None:
        return {"code": 404, "msg": "NOT_FOUND: unknown or expired taskId", "taskId": task_id}
    if result.fetch_status == FetchStatus.PENDING:
        return {"code": 280, "msg": "PROCESSING", "taskId": task_id, "dataId": result.data_id}
    if result.fetch_status == FetchStatus.FAILED and not result.frames:
        code, msg = DOWNLOAD_FAILED
        return {"code": code, "msg": f"{msg}: {result.fetch_error}", "taskId": task_id}
    return result_answer(result, [])


def task_error_code(error_code: str) -> tuple[int, str]:
    """Alibaba's code and msg for audit.scanning's error code."""
    return TASK_ERRORS.get(error_code, DOWNLOAD_FAILED)


def task_error(error_code: str, error: str, data_id: str) -> dict:
    """A task that could not be scanned (its media could not be fetched or read)."""
    code, msg = task_error_code(error_code)
    return {"code": code, "msg": f"{msg}: {error}", "dataId": data_id}


def image_scan_answer(scan: AsyncImageScan) -> dict:
    """An async image scan whose Result is not stored (yet): processing, or why it failed."""
    if scan.status == AsyncImageScanStatus.FAILED:
        return {**task_error(scan.error_code, scan.error, scan.data_id), "taskId": scan.task_id}
    return {"code": 280, "msg": "PROCESSING", "taskId": scan.task_id, "dataId": scan.data_id}


def _task(result: Result, results: list[dict]) -> dict:
    answer = {
        "code": 200,
        "msg": "OK",
        "dataId": result.data_id,
        "taskId": result.task_id,
        "results": results,
    }
    if result.url:
        answer["url"] = result.url
    if result.media_type == MediaType.TEXT:
        answer["content"] = result.text
    return answer


def scene_answers(result: Result, scenes: list[str]) -> list[dict]:
    if result.verdict_source not in HUMAN_SOURCES:
        return result.scene_results
    scenes = scenes or [r["scene"] for r in result.scene_results]
    if result.suggestion != "block":
        return [_scene(s, "normal", "pass") for s in scenes]
    blocked = scanning.CATEGORY_SCENE.get(result.label)
    blocked = blocked if blocked in scenes else scenes[0]
    return [
        _scene(s, result.label, "block") if s == blocked else _scene(s, "normal", "pass")
        for s in scenes
    ]


def _scene(scene: str, label: str, suggestion: str) -> dict:
    return {"scene": scene, "label": label, "suggestion": suggestion, "rate": 100.0}
