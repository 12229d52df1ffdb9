"""Data migrations shared by the audit and samples apps (their fingerprint rows have the same
shape, samples.fingerprint_base)."""


def minhash_signatures(app_label: str, model_name: str, owner_field: str):
    """A RunPython step: texts fingerprinted before signatures were stored (TEXT_MINHASH)
    get theirs, so near-duplicate matching, which reads only stored signatures, finds them."""

    def run(apps, schema_editor):
        from samples import fingerprints

        rows = apps.get_model(app_label, model_name)
        owners = rows._meta.get_field(owner_field).related_model
        owner_id = f"{owner_field}_id"
        hashed = set(rows.objects.filter(kind="text_exact").values_list(owner_id, flat=True))
        signed = set(rows.objects.filter(kind="text_minhash").values_list(owner_id, flat=True))
        missing = sorted(hashed - signed)
        for start in range(0, len(missing), 2000):
            batch = owners.objects.filter(id__in=missing[start : start + 2000])
            new = []
            for owner, text in batch.values_list("id", "text"):
                minhash = fingerprints.text_fingerprint(text).minhash
                if minhash:
                    code = fingerprints.minhash_pack(minhash)
                    new.append(rows(**{owner_id: owner}, kind="text_minhash", code=code))
            rows.objects.bulk_create(new)

    return run
