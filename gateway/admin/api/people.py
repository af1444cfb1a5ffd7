"""People of the roster and their faces: list, enrol a face from an uploaded photo, delete a
person's templates. Enrolment runs the same code as ``tack faces enroll``
(gateway/verify/face/): the quality gates apply and the template is stored encrypted."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Request, UploadFile

from gateway.admin.auth import Principal, context, requires
from gateway.admin.errors import ApiError
from gateway.admin.permissions import Permission
from gateway.store.roster import bump_version

router = APIRouter(prefix="/people", tags=["people and faces"])


@router.get("", dependencies=[requires(Permission.PEOPLE_READ)])
async def list_people(request: Request) -> dict[str, object]:
    """Id, name, department, whether active, and how many face templates. No card numbers."""
    async with context(request).db.execute(
        "SELECT p.person_id, p.name, p.department, p.active, count(t.id) FROM people p"
        " LEFT JOIN face_templates t ON t.person_id = p.person_id"
        " GROUP BY p.person_id ORDER BY p.person_id"
    ) as cur:
        rows = await cur.fetchall()
    items = [
        {
            "person_id": r[0],
            "name": r[1],
            "department": r[2],
            "active": bool(r[3]),
            "face_templates": int(r[4]),
        }
        for r in rows
    ]
    return {"items": items, "total": len(items)}


@router.post("/{person_id}/faces", status_code=201)
async def enroll_face(
    person_id: str,
    request: Request,
    me: Annotated[Principal, requires(Permission.FACES_WRITE)],
    photo: Annotated[UploadFile, File(description="A JPEG or PNG with one clear face.")],
) -> dict[str, object]:
    from gateway.security.keyring import KeyringError, keyring_for
    from gateway.verify.face import enroll_photos, limits_from
    from gateway.verify.face.errors import FaceError

    ctx = context(request)
    limit = ctx.settings.face.max_bytes
    data = await photo.read(limit + 1)
    if len(data) > limit:
        raise ApiError(
            413, "photo_too_large", f"the photo is over {limit} bytes (face.max_bytes); shrink it"
        )
    if not data:
        raise ApiError(422, "photo_empty", "the uploaded photo is empty; choose an image file")
    async with ctx.db.execute("SELECT 1 FROM people WHERE person_id = ?", (person_id,)) as cur:
        if await cur.fetchone() is None:
            raise ApiError(
                404,
                "no_such_person",
                f"{person_id!r} is not in the roster; check the id (GET /api/people) or wait "
                "for the bridge's roster pull",
            )
    try:
        # The keyring seals templates (a legacy face.key is read into it); never made here.
        keys = keyring_for(ctx.settings, create=False)
        result = await enroll_photos(
            ctx.db,
            keys,
            person_id,
            [data],
            source="admin",
            replace=False,
            limits=limits_from(ctx.settings.face),
        )
    except (FaceError, KeyringError) as exc:
        raise ApiError(409, "face_unavailable", exc.message) from exc
    if not result.enrolled:
        bad = result.rejected[0] if result.rejected else None
        raise ApiError(
            422,
            str(bad.reason) if bad else "face_not_found",
            f"the photo was not usable ({bad.detail if bad else 'no face'}); use a sharp, "
            "well-lit photo with one face, looking at the camera",
        )
    await ctx.audit.append(me.actor, "face.enroll", person_id, {"added": result.enrolled})
    return {"person_id": person_id, "enrolled": result.enrolled}


@router.delete("/{person_id}/faces")
async def delete_faces(
    person_id: str,
    request: Request,
    me: Annotated[Principal, requires(Permission.FACES_WRITE)],
) -> dict[str, object]:
    """Every face template of the person goes (when they leave, or ask)."""
    from gateway.verify.face.templates import TEMPLATES_VERSION_KEY

    ctx = context(request)
    async with ctx.audit.recording(me.actor, "face.delete", person_id):
        cur = await ctx.db.execute("DELETE FROM face_templates WHERE person_id = ?", (person_id,))
        removed = cur.rowcount
        await bump_version(ctx.db, TEMPLATES_VERSION_KEY)
    return {"person_id": person_id, "removed": removed}
