import dataclasses
import io
import pickle
import random

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

from audit import demo
from audit.media import MediaError
from samples import crophash
from samples import fingerprints as fp
from samples.quality import dataset, hard_edits


def encode(img: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return dataset.draw_photo(random.Random(7), 480, 360)


# --- Images ---------------------------------------------------------------------------------


def test_same_pixels_in_png_bmp_and_lossless_webp_have_the_same_exact_hash(photo):
    prints = [
        fp.image_fingerprint(encode(photo, "PNG")),
        fp.image_fingerprint(encode(photo, "BMP")),
        fp.image_fingerprint(encode(photo, "WEBP", lossless=True)),
    ]
    assert len({p.exact for p in prints}) == 1
    assert len({p.pdq for p in prints}) == 1


def test_one_changed_pixel_changes_the_exact_hash_but_not_the_match(photo):
    changed = photo.copy()
    changed.putpixel((10, 10), (0, 0, 0) if photo.getpixel((10, 10)) != (0, 0, 0) else (9, 9, 9))
    a, b = fp.image_fingerprint(encode(photo, "PNG")), fp.image_fingerprint(encode(changed, "PNG"))
    assert a.exact != b.exact
    assert fp.image_similar(a, b)[0]


def test_a_jpeg_with_other_metadata_has_the_same_exact_hash(photo):
    plain = encode(photo, "JPEG", quality=90)
    tagged = encode(photo, "JPEG", quality=90, comment=b"re-uploaded", dpi=(300, 300))
    assert plain != tagged
    assert fp.image_fingerprint(plain).exact == fp.image_fingerprint(tagged).exact


def test_a_photo_tagged_sideways_is_fingerprinted_upright(photo):
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: turn 90° clockwise to view
    tagged = fp.image_fingerprint(encode(photo, "JPEG", quality=90, exif=exif))
    upright = fp.image_fingerprint(
        encode(photo.transpose(Image.Transpose.ROTATE_270), "JPEG", quality=90)
    )
    matched, distance, form = fp.image_similar(tagged, upright)
    assert (matched, form) == (True, "pdq") and distance <= 8


def test_a_palette_image_hashes_like_its_rgb_rendering():
    img = demo.draw_shapes(random.Random(3), 300, 200).quantize(64)
    assert img.mode == "P"
    as_palette = fp.image_fingerprint(encode(img, "PNG"))
    as_rgb = fp.image_fingerprint(encode(img.convert("RGB"), "PNG"))
    assert (as_palette.exact, as_palette.pdq) == (as_rgb.exact, as_rgb.pdq)


def test_a_transparent_image_hashes_like_it_shows_on_white():
    img = Image.new("RGBA", (300, 200), (200, 30, 30, 0))  # the hidden colour must not count
    ImageDraw.Draw(img).ellipse((40, 30, 200, 180), fill=(20, 40, 200, 255))
    ImageDraw.Draw(img).rectangle((150, 20, 280, 90), fill=(250, 200, 0, 128))
    on_white = Image.alpha_composite(Image.new("RGBA", img.size, "white"), img).convert("RGB")
    a, b = fp.image_fingerprint(encode(img, "PNG")), fp.image_fingerprint(encode(on_white, "PNG"))
    assert (a.exact, a.pdq) == (b.exact, b.pdq)


def test_a_greyscale_with_alpha_image_hashes_like_it_shows_on_white():
    img = Image.new("LA", (200, 200), (0, 0))
    ImageDraw.Draw(img).ellipse((20, 20, 180, 180), fill=(90, 255))
    on_white = Image.new("L", img.size, 255)
    on_white.paste(img.getchannel("L"), mask=img.getchannel("A"))
    a = fp.image_fingerprint(encode(img, "PNG"))
    b = fp.image_fingerprint(encode(on_white.convert("RGB"), "PNG"))
    assert a.exact == b.exact


def test_a_gif_with_a_transparent_colour_hashes_like_it_shows_on_white():
    img = Image.new("P", (120, 80), 0)
    img.putpalette([255, 0, 0] + [0, 0, 255] + [0, 0, 0] * 254)
    ImageDraw.Draw(img).rectangle((30, 20, 90, 60), fill=1)
    on_white = img.convert("RGB")
    transparent = Image.fromarray((np.asarray(img) == 0).astype(np.uint8) * 255, "L")
    on_white.paste((255, 255, 255), mask=transparent)
    a = fp.image_fingerprint(encode(img, "GIF", transparency=0))
    assert a.exact == fp.image_fingerprint(encode(on_white, "PNG")).exact


def test_a_16_bit_greyscale_png_is_scaled_not_clipped():
    levels = np.tile(np.linspace(0, 65535, 256, dtype=np.uint16), (128, 1))
    img16 = Image.fromarray(levels)
    assert img16.mode.startswith("I;16")
    img8 = Image.fromarray((levels // 257).astype(np.uint8), "L")
    a, b = fp.image_fingerprint(encode(img16, "PNG")), fp.image_fingerprint(encode(img8, "PNG"))
    assert a.exact == b.exact


@pytest.mark.parametrize(
    ("transpose", "form"),
    [
        (Image.Transpose.FLIP_LEFT_RIGHT, "flip-h"),
        (Image.Transpose.FLIP_TOP_BOTTOM, "flip-v"),
        (Image.Transpose.ROTATE_90, "rot90"),
        (Image.Transpose.ROTATE_180, "rot180"),
        (Image.Transpose.ROTATE_270, "rot270"),
        (Image.Transpose.TRANSPOSE, "transpose"),
        (Image.Transpose.TRANSVERSE, "transverse"),
    ],
)
def test_a_flipped_or_rotated_copy_matches_through_the_variant_of_that_form(photo, transpose, form):
    source = fp.image_fingerprint(encode(photo, "JPEG", quality=90))
    copy = fp.image_fingerprint(encode(photo.transpose(transpose), "JPEG", quality=70))
    matched, distance, matched_form = fp.image_similar(copy, source)
    assert (matched, matched_form) == (True, form)
    assert distance <= 10
    assert fp.hamming(copy.pdq, source.pdq) > fp.PDQ_DISTANCE  # plain PDQ would miss it


def test_an_image_fingerprint_has_the_documented_shape(photo):
    print_ = fp.image_fingerprint(encode(photo, "JPEG"))
    assert len(print_.exact) == 64
    assert len(print_.pdq) == 32
    assert 0 <= print_.quality <= 100
    assert len(print_.variants) == len(fp.VARIANT_FORMS) == 7
    assert all(len(v) == 32 for v in print_.variants)
    assert len(print_.thumb) == fp.THUMB_SIZE * fp.THUMB_SIZE * 3 == 192
    assert print_.flat is False  # a photo: PDQ alone describes it


def test_identical_files_match_exactly(photo):
    data = encode(photo, "PNG")
    assert fp.image_similar(fp.image_fingerprint(data), fp.image_fingerprint(data)) == (
        True,
        0,
        "exact",
    )


def test_unrelated_pictures_do_not_match(photo):
    other = dataset.draw_photo(random.Random(8), 480, 360)
    matched, distance, _ = fp.image_similar(
        fp.image_fingerprint(encode(photo, "JPEG")), fp.image_fingerprint(encode(other, "JPEG"))
    )
    assert not matched
    assert distance > 50


def test_a_large_jpeg_is_decoded_at_a_reduced_scale():
    img = ImageOps.fit(dataset.draw_photo(random.Random(1), 800, 600), (2400, 1800))
    assert fp._image_decode(encode(img, "JPEG")).size == (600, 450)


def test_hamming_counts_differing_bits():
    assert fp.hamming(b"\x00" * 32, b"\x00" * 32) == 0
    assert fp.hamming(b"\xff" * 32, b"\x00" * 32) == 256
    assert fp.hamming(b"\x0f\x01", b"\x00\x03") == 5


def test_low_quality_hashes_get_a_stricter_distance():
    assert fp.pdq_threshold(fp.PDQ_MIN_QUALITY, 31) == 31
    assert fp.pdq_threshold(100, 20) == 20
    assert fp.pdq_threshold(fp.PDQ_MIN_QUALITY - 1, 31) == fp.LOW_QUALITY_DISTANCE < 31
    assert fp.pdq_threshold(0, 8) == 8  # never looser than the policy


def _print(bits: int, quality: int, thumb: bytes = bytes(192)) -> fp.ImageFingerprint:
    pdq = bits.to_bytes(32, "big")
    return fp.ImageFingerprint(
        exact=str(bits), pdq=pdq, quality=quality, variants=(pdq,) * 7, thumb=thumb, flat=False
    )


def _thumb(colour: tuple[int, int, int]) -> bytes:
    return Image.new("RGB", (fp.THUMB_SIZE, fp.THUMB_SIZE), colour).tobytes()


def test_a_low_quality_pair_beyond_the_stricter_distance_needs_alike_thumbnails():
    base = 0
    near = (1 << (fp.LOW_QUALITY_DISTANCE + 4)) - 1  # LOW_QUALITY_DISTANCE + 4 bits differ
    assert fp.image_similar(_print(base, 90), _print(near, 90))[0]
    closer = (1 << fp.LOW_QUALITY_DISTANCE) - 1
    assert fp.image_similar(_print(base, 20), _print(closer, 20))[0]
    blue, orange = _thumb((40, 60, 200)), _thumb((250, 140, 20))
    assert fp.image_similar(_print(base, 90, blue), _print(near, 20, blue))[0]
    assert not fp.image_similar(_print(base, 90, blue), _print(near, 20, orange))[0]


def test_pdq_hashes_beyond_the_distance_match_only_with_alike_thumbnails():
    base = 0
    beyond = (1 << (fp.PDQ_DISTANCE + fp.PDQ_CONFIRM_MARGIN)) - 1
    blue, orange = _thumb((40, 60, 200)), _thumb((250, 140, 20))
    assert fp.image_similar(_print(base, 90, blue), _print(beyond, 90, blue)) == (
        True,
        fp.PDQ_DISTANCE + fp.PDQ_CONFIRM_MARGIN,
        "pdq",
    )
    assert not fp.image_similar(_print(base, 90, blue), _print(beyond, 90, orange))[0]
    too_far = (1 << (fp.PDQ_DISTANCE + fp.PDQ_CONFIRM_MARGIN + 1)) - 1
    assert not fp.image_similar(_print(base, 90, blue), _print(too_far, 90, blue))[0]


def test_the_pdq_bits_from_the_coefficients_are_pdqhashs_own(photo):
    small = fp._image_shrink(photo, fp.HASH_SIZE)
    assert fp._pdq_checked(small)[:2] == fp._pdq(small)


def _band(background: str, band: str, top: int, size=(480, 360)) -> Image.Image:
    """A one-dimensional picture: PDQ's coefficients across the band are all zero."""
    img = Image.new("RGB", size, background)
    ImageDraw.Draw(img).rectangle((0, top, size[0], top + 60), fill=band)
    return img


@pytest.mark.parametrize("transform", list(dataset.IMAGE_TRANSFORMS))
def test_a_flat_picture_and_its_edited_copy_match(transform):
    source = fp.image_fingerprint(encode(_band("#a8dadc", "#457b9d", 120), "PNG"))
    change, fmt, quality = dataset.IMAGE_TRANSFORMS[transform]
    copy = _band("#a8dadc", "#457b9d", 120)
    copy = fp.image_fingerprint(dataset.encode(change(random.Random(1), copy), fmt, quality))
    # Good quality by PDQ's measure, yet its bits are noise: plain PDQ misses every copy.
    assert source.quality >= fp.PDQ_MIN_QUALITY and source.flat
    assert fp.hamming(copy.pdq, source.pdq) > 64
    assert fp.image_similar(copy, source)[0]


@pytest.mark.parametrize(
    "other",
    [_band("#a8dadc", "#457b9d", 240), _band("#f4a261", "#6a4c93", 120)],
    ids=["band-elsewhere", "other-colours"],
)
def test_an_unrelated_flat_picture_does_not_match(other):
    source = fp.image_fingerprint(encode(_band("#a8dadc", "#457b9d", 120), "PNG"))
    other = fp.image_fingerprint(encode(other, "JPEG", quality=85))
    assert not fp.image_similar(other, source)[0]
    assert not fp.image_similar(source, other)[0]


def test_a_blank_picture_is_flat_and_matches_only_its_own_colour():
    grey = fp.image_fingerprint(encode(Image.new("RGB", (300, 200), (128, 128, 128)), "PNG"))
    brighter = fp.image_fingerprint(
        encode(Image.new("RGB", (200, 300), (158, 158, 158)), "JPEG", quality=80)
    )
    red = fp.image_fingerprint(encode(Image.new("RGB", (300, 200), (200, 30, 30)), "PNG"))
    assert grey.flat and grey.quality == 0
    assert fp.image_similar(brighter, grey)[0]
    assert not fp.image_similar(red, grey)[0]


def test_a_watermarked_screenshot_matches_through_its_thumbnail():
    # Seed 0 picture 92 of the quality set: a code screenshot whose corner watermark moves its
    # PDQ hash just past PDQ_DISTANCE.
    files = {transform: data for _, _, transform, data in dataset.image_group(0, 92)}
    source = fp.image_fingerprint(files["source"])
    copy = fp.image_fingerprint(files["watermark"])
    matched, distance, form = fp.image_similar(copy, source)
    assert (matched, form) == (True, "pdq") and distance > fp.PDQ_DISTANCE


def test_thumbnails_allow_for_brightness_contrast_and_grayscale_but_not_other_colours():
    img = _band("#a8dadc", "#457b9d", 120)
    thumb = fp.image_fingerprint(encode(img, "PNG")).thumb

    def distance(changed: Image.Image) -> float:
        other = fp.image_fingerprint(encode(changed, "PNG")).thumb
        return float(fp.thumb_distances(other, [(thumb, "pdq")])[0])

    assert distance(ImageEnhance.Brightness(img).enhance(1.25)) <= fp.THUMB_DISTANCE
    assert distance(ImageEnhance.Contrast(img).enhance(0.8)) <= fp.THUMB_DISTANCE
    assert distance(ImageOps.grayscale(img).convert("RGB")) <= fp.THUMB_DISTANCE
    assert distance(_band("#f4a261", "#6a4c93", 120)) > 10 * fp.THUMB_DISTANCE
    turned = img.transpose(Image.Transpose.ROTATE_90)
    assert distance(turned) > fp.THUMB_DISTANCE
    other = fp.image_fingerprint(encode(turned, "PNG")).thumb
    assert fp.thumb_distances(other, [(thumb, "rot90")])[0] <= fp.THUMB_DISTANCE


def test_thumbnail_forms_turn_like_the_pixels(photo):
    small = fp._image_shrink(photo, fp.HASH_SIZE)
    thumb = small.resize((fp.THUMB_SIZE, fp.THUMB_SIZE), Image.Resampling.BOX).tobytes()
    for name, method in fp.VARIANT_FORMS.items():
        turned = small.transpose(method).resize(
            (fp.THUMB_SIZE, fp.THUMB_SIZE), Image.Resampling.BOX
        )
        cells = fp.THUMB_FORMS[name](fp._thumb_array(thumb))
        assert np.abs(np.asarray(turned, dtype=np.float32) - cells).max() <= 3, name


def test_a_grey_picture_probes_by_luma_and_a_coloured_one_also_as_grey():
    coloured = fp.image_fingerprint(encode(_band("#a8dadc", "#457b9d", 120), "PNG")).thumb
    grey = fp.image_fingerprint(
        encode(ImageOps.grayscale(_band("#a8dadc", "#457b9d", 120)), "PNG")
    ).thumb
    forms = 8 * 2  # dihedral forms, as it is and brightened
    assert len(fp.layout_probes(coloured)) == 2 * forms
    assert len(fp.layout_probes(grey)) == forms
    assert all(len(code) == 32 for _, code in fp.layout_codes(coloured))
    # The grayscale copy meets the coloured picture's luma code, not its colour code.
    codes = dict(fp.layout_codes(coloured))
    probe = dict(fp.layout_probes(grey))["pdq"]
    assert fp.hamming(probe, codes["luma"]) <= fp.LAYOUT_DISTANCE
    assert fp.hamming(probe, codes["colour"]) > fp.LAYOUT_DISTANCE


@pytest.mark.parametrize(
    "data",
    [b"", b"not an image at all", encode(Image.new("RGB", (8, 8)), "TIFF")],
    ids=["empty", "garbage", "tiff"],
)
def test_unacceptable_files_raise_media_error(data):
    with pytest.raises(MediaError):
        fp.image_fingerprint(data)


def test_a_truncated_jpeg_raises_media_error(photo):
    with pytest.raises(MediaError):
        fp.image_fingerprint(encode(photo, "JPEG")[:3000])


def test_an_image_over_the_pixel_limit_raises_media_error(settings, photo):
    settings.RESULTS_MAX_IMAGE_PIXELS = 100_000
    with pytest.raises(MediaError, match="too large"):
        fp.image_fingerprint(encode(photo, "PNG"))


# --- Texts ----------------------------------------------------------------------------------

SPAM = "Cheap Rolex watches, 90% off! Call +1 555-0123 or visit www.deals.example"


@pytest.mark.parametrize(
    ("edit", "text"),
    [
        ("look-alikes", "Сhеар Rоlех wаtсhеѕ, 90% οff! Call +1 555-0123 "
                        "or visit www.deals.example"),
        ("full-width", "Ｃｈｅａｐ Ｒｏｌｅｘ ｗａｔｃｈｅｓ，９０％ off! "
                       "Call +1 555-0123 or visit www.deals.example"),
        ("zero-width", "Che\u200bap Ro\u200dlex wat\u2060ches, 90% o\ufeffff! Call +1 555-0123 "
                       "or vi\u00adsit www.deals.example"),
        ("spacing", "C h e a p R.o.l.e.x w-a-t-c-h-e-s 90% off Call +1 5 5 5 0 1 2 3 or visit "
                    "www . deals . example"),
        ("leetspeak", "Ch34p R0l3x w4tch3$, 90% 0ff! C@ll +1 555-0123 0r v1s17 www.d34ls.3x4mpl3"),
        ("case", "CHEAP ROLEX WATCHES, 90% OFF! CALL +1 555-0123 OR VISIT WWW.DEALS.EXAMPLE"),
        ("emoji", "🔥Cheap Rolex watches🔥, 90% off! 💰 Call +1 555-0123 "
                  "or visit www.deals.example 👉"),
        ("accents", "Chéáp Rôlèx wätchés, 90% off! Call +1 555-0123 or visit www.deals.example"),
    ],
)  # fmt: skip
def test_evasions_normalize_to_the_same_text(edit, text):
    assert fp.text_normalize(text) == fp.text_normalize(SPAM)
    assert fp.text_similarity(fp.text_fingerprint(text), fp.text_fingerprint(SPAM)) == 1.0


def test_normalization_keeps_only_folded_letters_and_digits():
    assert fp.text_normalize("Hello, World! 2024") == "heiioworid2o2a"
    assert fp.text_normalize("fo11ow") == fp.text_normalize("follow")


@pytest.mark.parametrize(
    "text",
    [
        "Cheap Rolex watches, 90% off! Call +1 555-0177 or visit www.deals.example",
        "Cheap Rolex watches, 90% off! Call +1 555-0123 or visit www.deals2.example",
        "Cheap genuine Rolex watches, 90% off! Call +1 555-0123 or visit www.deals.example",
        "Cheap Rolex watches, 90% off! Call +1 555-0123 or www.deals.example",
        "Cheap Rolex watches, 90% off! Call +1 555-0123 or see www.deals.example",
    ],
    ids=["other-phone-digits", "other-url", "word-added", "word-removed", "words-swapped"],
)
def test_small_edits_stay_above_the_threshold(text):
    a, b = fp.text_fingerprint(text), fp.text_fingerprint(SPAM)
    assert a.exact != b.exact
    assert fp.text_similarity(a, b) >= fp.TEXT_THRESHOLD
    assert set(fp.text_band_keys(a)) & set(fp.text_band_keys(b))


@pytest.mark.parametrize(
    "text",
    [
        "My grandfather left me his old Rolex, it still keeps perfect time after forty years.",
        "Does anyone know a shop that repairs watches without charging a fortune? Call me.",
        "Beware of cheap watch offers in your messages, they are scams. Report them.",
    ],
)
def test_benign_texts_on_the_same_topic_do_not_match(text):
    a, b = fp.text_fingerprint(text), fp.text_fingerprint(SPAM)
    assert fp.text_similarity(a, b) < fp.TEXT_THRESHOLD / 2
    assert not set(fp.text_band_keys(a)) & set(fp.text_band_keys(b))


def test_band_keys_are_signed_64_bit_and_one_per_band():
    keys = fp.text_band_keys(fp.text_fingerprint(SPAM))
    assert len(keys) == fp.LSH_BANDS == 32
    assert len(set(keys)) == len(keys)
    assert all(-(2**63) <= key < 2**63 for key in keys)


def test_the_text_signature_is_stable():
    # Stored signatures and band keys are compared with new ones: an accidental change of the
    # hashing (seeds, shingles, tables) would silently stop every match.
    first = fp.text_fingerprint(SPAM)
    assert first == fp.text_fingerprint(SPAM)
    assert len(first.minhash) == fp.MINHASH_PERMUTATIONS
    assert all(0 <= v < 2**32 for v in first.minhash)
    assert first.normalized == "cheaproiexwatches9ooffcaiiisssoi2eorvisitwwwdeaisexampie"
    assert first.exact == "183deec723ba374ef75483ecea5f79b224800b30d22ef7e27eee3722db33f3f1"
    assert first.minhash[:3] == (19816380, 3319678, 11113778)


def test_texts_without_letters_keep_their_symbols():
    fire, smile = fp.text_fingerprint("🔥🔥🔥"), fp.text_fingerprint("😀")
    assert fire.normalized == "🔥🔥🔥"
    assert fire.exact != smile.exact
    assert fp.text_similarity(fire, smile) < fp.TEXT_THRESHOLD


def test_an_empty_text_matches_nothing_but_itself():
    empty = fp.text_fingerprint("  \u200b ")
    assert empty.minhash == () and fp.text_band_keys(empty) == []
    assert fp.text_similarity(empty, fp.text_fingerprint(SPAM)) == 0.0
    assert fp.text_similarity(empty, fp.text_fingerprint("")) == 1.0


def test_short_texts_get_a_signature():
    print_ = fp.text_fingerprint("ok")
    assert len(print_.minhash) == fp.MINHASH_PERMUTATIONS
    assert fp.text_similarity(print_, fp.text_fingerprint("no")) < fp.TEXT_THRESHOLD


# --- Videos ---------------------------------------------------------------------------------


def _clip(tmp_path, name: str, seed: int, size=(320, 240), quality=70, seconds=4) -> str:
    rng = random.Random(seed)
    background = dataset.draw_photo(rng, *size)
    frames = []
    for index in range(seconds * demo.VIDEO_FPS):
        frame = background.copy()
        x = index * 4 % size[0]
        ImageDraw.Draw(frame).ellipse((x, 40, x + 50, 90), fill="#ffffff")
        frames.append(frame)
    path = tmp_path / name
    path.write_bytes(demo.encode_clip(frames, demo.video_codec(), quality))
    return str(path)


def _reencode(tmp_path, path: str, size=(240, 180), quality=20) -> str:
    import av

    with av.open(path) as container:
        frames = [f.to_image().resize(size) for f in container.decode(video=0)]
    out = tmp_path / "reencoded.mp4"
    out.write_bytes(demo.encode_clip(frames, demo.video_codec(), quality))
    return str(out)


def test_a_video_and_its_reencode_are_similar(tmp_path):
    original = _clip(tmp_path, "a.mp4", seed=1)
    a = fp.video_fingerprint(original)
    b = fp.video_fingerprint(_reencode(tmp_path, original))
    assert len(a.frames) == len(a.qualities) == 4  # one a second
    assert a.file_hash != b.file_hash
    matched, share = fp.video_similar(b, a)
    assert matched and share == 1.0


def test_different_videos_are_not_similar(tmp_path):
    a = fp.video_fingerprint(_clip(tmp_path, "a.mp4", seed=1))
    b = fp.video_fingerprint(_clip(tmp_path, "b.mp4", seed=2))
    assert fp.video_similar(a, b) == (False, 0.0)


def test_the_same_video_file_matches_by_its_hash(tmp_path):
    a = fp.video_fingerprint(_clip(tmp_path, "a.mp4", seed=1))
    assert fp.video_similar(a, a) == (True, 1.0)


def test_dark_frames_do_not_make_unrelated_videos_similar():
    black, black_quality = b"\x00" * 32, 0  # what PDQ gives every blank frame
    a = fp.VideoFingerprint("a", (black, black, b"\x0f" * 32, b"\x33" * 32), (0, 0, 100, 100))
    b = fp.VideoFingerprint("b", (black, black, b"\xf0" * 32, b"\xcc" * 32), (0, 0, 100, 100))
    assert fp.video_similar(a, b) == (False, 0.0)
    dark = fp.VideoFingerprint("c", (black, black), (black_quality, black_quality))
    assert fp.video_similar(dark, b) == (True, 1.0)  # nothing else to compare


def test_video_sampling_stops_at_the_frame_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(fp, "VIDEO_MAX_FRAMES", 2)
    a = fp.video_fingerprint(_clip(tmp_path, "a.mp4", seed=1))
    assert len(a.frames) == 2


def test_a_file_that_is_not_a_video_raises_media_error(tmp_path):
    path = tmp_path / "fake.mp4"
    path.write_bytes(b"#EXTM3U\nhttp://example.com/a.ts\n")
    with pytest.raises(MediaError):
        fp.video_fingerprint(str(path))


# --- Cropped forms (issue 8) ------------------------------------------------------------------


def decoded(img: Image.Image, fmt: str = "JPEG") -> np.ndarray:
    """The pixels as the trimming sees them: the picture after a round trip through `fmt`."""
    return np.asarray(Image.open(io.BytesIO(encode(img, fmt, quality=85))).convert("RGB"))


def framed(img: Image.Image, colour, left: int, top: int, right: int, bottom: int) -> Image.Image:
    canvas = Image.new("RGB", (img.width + left + right, img.height + top + bottom), colour)
    canvas.paste(img, (left, top))
    return canvas


def captioned(img: Image.Image, where: str, share: float = 0.15, keep_size=False):
    spec = {
        "where": where,
        "share": share,
        "background": (255, 255, 255),
        "ink": (0, 0, 0),
        "lines": ["WHEN YOU SEE", "WHAT THEY DID"],
        "keep_size": keep_size,
    }
    return hard_edits.captioned(img, spec)


def near(box, expected, slack: int = 1) -> bool:
    return all(abs(a - b) <= slack for a, b in zip(box, expected, strict=True))


@pytest.mark.parametrize("colour", [(0, 0, 0), (255, 255, 255), (40, 120, 200)])
def test_uniform_borders_are_trimmed_to_the_pixel_despite_jpeg_noise(photo, colour):
    small = photo.resize((200, 150))
    borders, trimmed = fp._trim_boxes(decoded(framed(small, colour, 12, 8, 20, 5)))
    assert near(borders, (12, 8, 212, 158)) and near(trimmed, (12, 8, 212, 158))


def test_a_caption_bar_is_trimmed_with_its_text_but_not_by_the_borders_only_trim(photo):
    small = photo.resize((200, 150))
    for where in ("top", "bottom"):
        pixels = decoded(captioned(small, where))
        borders, trimmed = fp._trim_boxes(pixels)
        band = pixels.shape[0] - 150
        expected = (0, band, 200, band + 150) if where == "top" else (0, 0, 200, 150)
        assert near(trimmed, expected), where
        assert borders[3] - borders[1] > 150  # the text stops the borders-only trim


def test_a_blurred_border_is_trimmed_for_the_soft_form_only(photo):
    small = photo.resize((200, 150))
    canvas = small.resize((300, 225)).filter(ImageFilter.GaussianBlur(12))
    canvas.paste(small, (50, 38))
    pixels = decoded(canvas)
    assert fp._trim_boxes(pixels) == ((0, 0, 300, 225), (0, 0, 300, 225))
    assert near(fp._soft_trimmed(pixels, (0, 0, 300, 225)), (50, 38, 250, 188))


def test_a_smooth_sky_a_blank_picture_and_a_photo_are_not_trimmed(photo):
    sky = np.linspace(60, 200, 150, dtype=np.uint8)[:, None, None].repeat(200, 1).repeat(3, 2)
    sky[100:] = np.asarray(photo.resize((200, 50)))  # a picture below a gradient
    blank = np.full((150, 200, 3), 230, dtype=np.uint8)
    for pixels in (sky, blank, decoded(photo.resize((200, 150)))):
        assert fp._trim_boxes(pixels) == ((0, 0, 200, 150), (0, 0, 200, 150))


def test_a_picture_keeps_each_distinct_cropped_form_once(photo):
    plain = fp.image_fingerprint(encode(photo, "JPEG")).crops
    forms = [form for form, _, _ in plain]
    assert forms[0] == "whole"
    assert not {"trim", "btrim"} & set(forms)  # nothing to trim: the same hash as "whole"
    assert len({code for _, code, _ in plain}) == len(plain)
    framed_and_captioned = captioned(framed(photo, "white", 30, 0, 30, 0), "top")
    edited = fp.image_fingerprint(encode(framed_and_captioned, "JPEG")).crops
    assert {"trim", "btrim"} <= {form for form, _, _ in edited} <= set(fp.CROP_FORMS)
    assert all(len(code) == 32 and 0 <= quality <= 100 for _, code, quality in edited)


def crop_copies(photo: Image.Image) -> dict[str, Image.Image]:
    w, h = photo.size
    return {
        "cropped": photo.crop((w // 10, h // 10, w - w // 10, h - h // 10)),
        "bordered": framed(photo, (255, 255, 255), 30, 20, 30, 20),
        "letterboxed": hard_edits.letterboxed(photo, {"size": (w, w), "colour": (0, 0, 0)}),
        "captioned": captioned(photo, "bottom", 0.18),
        "captioned-resized": captioned(photo, "top", 0.12, keep_size=True),
        "blurred-border": hard_edits.blurred_border(random.Random(3), photo),
    }


COPY_NAMES = [
    "cropped",
    "bordered",
    "letterboxed",
    "captioned",
    "captioned-resized",
    "blurred-border",
]


@pytest.mark.parametrize("copy", COPY_NAMES)
def test_cropped_bordered_and_captioned_copies_match_through_their_cropped_forms(photo, copy):
    source = fp.image_fingerprint(encode(photo, "PNG"))
    edited = fp.image_fingerprint(encode(crop_copies(photo)[copy], "JPEG", quality=85))
    assert fp.hamming(edited.pdq, source.pdq) > fp.PDQ_DISTANCE  # plain PDQ misses it
    for query, stored in ((edited, source), (source, edited)):
        matched, bits, form = fp.image_similar(query, stored)
        assert matched, (copy, query is source)
        if form.startswith("crophash:"):  # crophash's: crops, and what the trims miss
            assert bits <= crophash.RADIUS and copy in ("cropped", "blurred-border")
        else:
            mine, _, theirs = form.partition("~")
            assert mine in fp.CROP_QUERY_FORMS and theirs in fp.CROP_FORMS
            assert bits <= fp.CROP_DISTANCE


def test_other_regions_of_one_picture_do_not_match_by_their_cropped_forms():
    rng = random.Random(11)
    for _ in range(3):
        _, first, second = hard_edits.region_pair(rng)
        a, b = fp.image_fingerprint(first), fp.image_fingerprint(second)
        assert not fp.image_similar(a, b)[0] and not fp.image_similar(b, a)[0]


def test_cropped_forms_of_low_quality_or_beyond_the_distance_do_not_match(photo):
    source = fp.image_fingerprint(encode(photo, "PNG"))
    edited = fp.image_fingerprint(encode(crop_copies(photo)["bordered"], "JPEG", quality=85))
    bits, _ = fp.crop_comparison(edited.crops, source.crops)
    # The crop distance moves with the policy's distance.
    stricter = bits - 1 - (fp.CROP_DISTANCE - fp.PDQ_DISTANCE)
    assert fp.crop_comparison(edited.crops, source.crops, distance=stricter) is None
    # 20 bits off: a match between informative forms, not between forms of little gradient.
    off = tuple((form, _flipped(code, 20), quality) for form, code, quality in source.crops)
    assert fp.crop_comparison(source.crops, off) == (20, "whole~whole")
    flat = tuple((form, code, fp.CROP_MIN_QUALITY - 1) for form, code, _ in off)
    assert fp.crop_comparison(source.crops, flat) is None
    # Forms it does not know (central crops some older rows still have) are not compared.
    retired = tuple(("c80", code, quality) for _, code, quality in source.crops)
    assert fp.crop_comparison(retired, source.crops) is None
    assert fp.crop_comparison(source.crops, retired) is None


def _flipped(code: bytes, bits: int) -> bytes:
    value = int.from_bytes(code, "big")
    for bit in range(bits):
        value ^= 1 << (bit * 12)
    return value.to_bytes(32, "big")


def test_a_copy_cropped_unevenly_resized_and_recompressed_matches_by_crophash(photo):
    source = fp.image_fingerprint(encode(photo, "PNG"))
    w, h = photo.size
    cut = photo.crop((round(w * 0.08), round(h * 0.02), round(w * 0.97), round(h * 0.9)))
    cut = cut.resize((cut.width * 6 // 10, cut.height * 6 // 10), Image.Resampling.LANCZOS)
    copy = fp.image_fingerprint(encode(cut, "JPEG", quality=60))
    assert fp.crop_comparison(copy.crops, source.crops) is None  # the PDQ crops miss it
    matched, bits, form = fp.image_similar(copy, source)
    assert matched and form.startswith("crophash:") and bits <= crophash.RADIUS
    assert form.removeprefix("crophash:") in source.crop_stored.forms
    # A fingerprint made before crophash (no codes) is judged without it.
    legacy = dataclasses.replace(source, crop_stored=None, crop_query=None)
    assert not fp.image_similar(copy, legacy)[0]


def test_image_fingerprints_compare_and_pickle_by_value(photo):
    data = encode(photo, "JPEG", quality=90)
    first, second = fp.image_fingerprint(data), fp.image_fingerprint(data)
    assert first == second and hash(first) == hash(second)
    assert pickle.loads(pickle.dumps(first)) == first  # noqa: S301 (our own bytes)
