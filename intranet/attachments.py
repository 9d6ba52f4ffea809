"""Images and files attached to posts: stored by Beacon, served only to people who may see the post.

Uploads are read with a hard cap (so an oversized file is refused before it is all in memory),
typed by their first bytes rather than by the name or the type the browser claims, and stored
under a random key in the upload folder (``INTRANET_UPLOAD_DIR``, by default ``uploads/`` in the
Flask instance folder). SVG and HTML are never accepted: both can carry script.

Who may download an attachment: everyone who may see its post (the one targeting rule), and the
people who manage the post (so drafts show their images on the desk). Anyone else gets the same
404 as for an attachment that does not exist.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import os
import re
import secrets
import unicodedata
import zipfile
from pathlib import Path
from typing import BinaryIO

from sqlmodel import Session, select

from intranet import posts, targeting
from intranet.errors import InvalidInput, NotFound
from intranet.languages import N_
from intranet.models import Attachment, Employee, Post

logger = logging.getLogger(__name__)


MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024

#: content type -> file extension, for each kind Beacon accepts.
IMAGE_TYPES = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp"}
FILE_TYPES = {
    "application/pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "pptx",
    "text/plain": "txt",
    "text/csv": "csv",
}
_OOXML_PARTS = {"word/": "docx", "xl/": "xlsx", "ppt/": "pptx"}
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]+")


def read_upload(stream: BinaryIO, limit: int) -> bytes:
    """Read at most *limit* bytes from *stream*.

    :raise posts.TooLarge: as soon as the stream turns out to be longer.
    """
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise posts.TooLarge(N_("The file is larger than %(size)s MB; upload a smaller one."), size=limit // (1024 * 1024),
                             details={"field": "file", "limit": limit})
    return data


def sniff(data: bytes, filename: str) -> tuple[str, str]:
    """The content type and kind (``image`` or ``file``) of *data*, from its bytes.

    :raise InvalidInput: for anything Beacon does not store (SVG, HTML, executables, unknown types).
    """
    head = data[:16]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png", "image"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg", "image"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif", "image"
    if head[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp", "image"
    if head.startswith(b"%PDF-"):
        return "application/pdf", "file"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, ValueError):
            names = []
        if "[Content_Types].xml" in names:
            for prefix, ext in _OOXML_PARTS.items():
                if any(n.startswith(prefix) for n in names):
                    return next(t for t, e in FILE_TYPES.items() if e == ext), "file"
    elif b"\x00" not in data:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None and not re.search(r"<\s*(svg|html|script|!doctype|\?xml)", text[:4096], re.I):
            return ("text/csv" if filename.lower().endswith(".csv") else "text/plain"), "file"
    raise InvalidInput(N_("This type of file cannot be attached. Images: PNG, JPEG, GIF, WebP; files: PDF, Word, Excel, "
                          "PowerPoint, plain text or CSV."), details={"field": "file"})


def safe_filename(name: str, content_type: str) -> str:
    """A display name without paths or control characters, ending in the extension of its real type."""
    name = unicodedata.normalize("NFC", os.path.basename((name or "").replace("\\", "/")))
    name = _UNSAFE_NAME.sub("", name).strip(" .") or "attachment"
    ext = (IMAGE_TYPES | FILE_TYPES)[content_type]
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return f"{stem[:200]}.{ext}"


def path_for(upload_dir: Path, attachment: Attachment) -> Path:
    """Where *attachment*'s bytes live inside *upload_dir*."""
    return upload_dir / attachment.storage_key[:2] / attachment.storage_key


def store(session: Session, *, data: bytes, filename: str, post: Post, uploader: Employee, upload_dir: Path,
          now: dt.datetime, max_image_bytes: int = MAX_IMAGE_BYTES) -> Attachment:
    """Check, write and record an upload for *post* (the caller checked that *uploader* may edit it).

    The file is written before the row, under a fresh random key, so a failed transaction
    leaves at most an unreferenced file behind, never a row without its file.

    :raise InvalidInput: for a type Beacon does not store.
    :raise posts.TooLarge: for an image over *max_image_bytes*.
    """
    if not data:
        raise InvalidInput(N_("The file is empty."), details={"field": "file"})
    content_type, kind = sniff(data, filename)
    if kind == "image" and len(data) > max_image_bytes:
        raise posts.TooLarge(N_("Images may be up to %(size)s MB."), size=max_image_bytes // (1024 * 1024),
                             details={"field": "file", "limit": max_image_bytes})
    key = secrets.token_hex(20)
    attachment = Attachment(post_id=post.id, filename=safe_filename(filename, content_type), content_type=content_type,
                            size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), storage_key=key, kind=kind,
                            uploaded_by_pk=uploader.id, created_at=now)
    target = path_for(upload_dir, attachment)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    partial.write_bytes(data)
    os.replace(partial, target)
    session.add(attachment)
    session.flush()
    logger.info("Attachment %s (%s, %s bytes) stored for post %s by %s", attachment.id, content_type, len(data),
                post.id, uploader.id)
    return attachment


def attachments_of(session: Session, post: Post) -> list[Attachment]:
    """The attachments of *post*, oldest first."""
    return list(session.exec(select(Attachment).where(Attachment.post_id == post.id).order_by(Attachment.id)).all())


def downloadable_or_404(session: Session, employee: Employee, attachment_id: int, now: dt.datetime) -> Attachment:
    """Load an attachment *employee* may download.

    :raise NotFound: when it does not exist or its post is not visible to *employee* (the same answer).
    """
    attachment = session.get(Attachment, attachment_id)
    post = session.get(Post, attachment.post_id) if attachment is not None and attachment.post_id else None
    if post is None or not (targeting.may_see(session, employee, post, now) or posts.may_manage(session, employee, post)):
        raise NotFound(N_("This file does not exist."))
    return attachment


def files_of(session: Session, post: Post, upload_dir: Path) -> list[Path]:
    """Where *post*'s attachments are stored, read before deleting the post.

    Deleting a draft removes its attachment rows in the transaction; the caller unlinks these
    files with :func:`unlink` only after committing, so a rolled-back deletion keeps its files.
    """
    return [path_for(upload_dir, a) for a in attachments_of(session, post)]


def unlink(paths: list[Path]) -> None:
    """Delete stored files whose rows are gone for good (committed); a missing file is no error."""
    for path in paths:
        path.unlink(missing_ok=True)
        logger.info("Deleted attachment file %s", path.name)


def remove(session: Session, attachment: Attachment, upload_dir: Path) -> Path:
    """Delete the row; return the file's path, for the caller to unlink after committing."""
    session.delete(attachment)
    session.flush()
    return path_for(upload_dir, attachment)
