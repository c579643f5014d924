"""Annotations as DICOM Microscopy Bulk Simple Annotations (highdicom), out and in.

Out: one annotation group per kind of shape and label (a group holds one graphic type and one
label), coordinates 2D (SCOORD) in level-0 pixels of the slide, i.e. its total pixel matrix.
point and text -> POINT, line and an open outline -> POLYLINE, rect -> RECTANGLE (four corners),
ellipse -> ELLIPSE (its major then minor axis end points), polygon and freehand -> POLYGON.
The file references the slide: the DICOM UIDs of its base level when the slide came from DICOM,
else UIDs derived from the slide's id (stable, so every export of a slide names the same
image). It carries no patient identifiers: the patient and study attributes are empty.

In: every group's annotations become shapes with the group's label; measurements are kept by
their concept's meaning. Colours have no place in the format and are not carried.
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from collab.sync.geojson_import import MAX_FEATURES, MAX_LABEL, Imported, ImportRefused

VL_WHOLE_SLIDE = "1.2.840.10008.5.1.4.1.1.77.1.6"
SLIDE_NAMESPACE = uuid.UUID("6f0f3c52-8a7e-4f4e-9a55-0c0ab1a7c0de")


@dataclass(frozen=True)
class SlideRef:
    """The image the annotations are on, by its DICOM identity."""

    study: str
    series: str
    instance: str
    frame_of_reference: str

    @classmethod
    def derived(cls, slide_id: str) -> SlideRef:
        """UIDs of a slide that is no DICOM file: ``2.25.`` and a UUID from its id."""

        def uid(part: str) -> str:
            return f"2.25.{uuid.uuid5(SLIDE_NAMESPACE, f'{slide_id}:{part}').int}"

        return cls(uid("study"), uid("series"), uid("instance"), uid("frame"))


def _source(ref: SlideRef) -> Any:
    from pydicom.dataset import Dataset

    source = Dataset()
    source.SOPClassUID = VL_WHOLE_SLIDE
    source.StudyInstanceUID = ref.study
    source.SeriesInstanceUID = ref.series
    source.SOPInstanceUID = ref.instance
    source.FrameOfReferenceUID = ref.frame_of_reference
    source.Modality = "SM"
    # Type 2 attributes: present and empty. The file names no patient.
    for keyword in (
        "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
        "ReferringPhysicianName", "StudyID", "AccessionNumber",
    ):  # fmt: skip
        setattr(source, keyword, "")
    return source


def _graphic(annotation: dict[str, Any]) -> tuple[str, np.ndarray] | None:
    """The graphic type and data of one of our annotations, or None if it has no shape."""
    try:
        points = np.array([[float(p[0]), float(p[1])] for p in annotation.get("points") or []])
    except (TypeError, ValueError, IndexError):
        return None
    if points.size == 0 or not np.isfinite(points).all():
        return None
    kind = annotation.get("kind")
    if kind in ("point", "text"):
        return "POINT", points[:1]
    if kind == "line" and len(points) >= 2:
        return "POLYLINE", points[:2]
    if kind == "rect" and len(points) >= 2:
        (x0, y0), (x1, y1) = points[:2]
        return "RECTANGLE", np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    if kind == "ellipse" and len(points) >= 2:
        (x0, y0), (x1, y1) = points[:2]
        cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, abs(x1 - x0) / 2, abs(y1 - y0) / 2
        across = [[cx - rx, cy], [cx + rx, cy]]
        down = [[cx, cy - ry], [cx, cy + ry]]
        return "ELLIPSE", np.array(across + down if rx >= ry else down + across)
    if kind in ("polygon", "freehand") and len(points) >= 2:
        if annotation.get("closed") is False:
            return "POLYLINE", points
        return ("POLYGON", points) if len(points) >= 3 else None
    return None


def annotations_to_dicom(annotations: list[dict[str, Any]], ref: SlideRef, *, version: str) -> bytes:
    """A Microscopy Bulk Simple Annotations instance (Part 10 bytes) of ``annotations``."""
    import highdicom as hd
    from highdicom.ann import (
        AnnotationCoordinateTypeValues,
        AnnotationGroup,
        AnnotationGroupGenerationTypeValues,
        GraphicTypeValues,
        MicroscopyBulkSimpleAnnotations,
    )
    from pydicom.sr.codedict import codes

    groups: dict[tuple[str, str], list[np.ndarray]] = {}
    for annotation in annotations:
        found = _graphic(annotation)
        if found is None:
            continue
        label = str(annotation.get("label") or "").strip()[:64] or "Annotation"
        groups.setdefault((found[0], label), []).append(found[1])
    if not groups:
        raise ImportRefused("This slide has no annotations to export.")
    made = [
        AnnotationGroup(
            number=number,
            uid=hd.UID(),
            label=label,
            annotated_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            annotated_property_type=codes.SCT.Neoplasm,
            graphic_type=GraphicTypeValues[graphic],
            graphic_data=data,
            algorithm_type=AnnotationGroupGenerationTypeValues.MANUAL,
        )
        for number, ((graphic, label), data) in enumerate(sorted(groups.items()), start=1)
    ]
    instance = MicroscopyBulkSimpleAnnotations(
        source_images=[_source(ref)],
        annotation_coordinate_type=AnnotationCoordinateTypeValues.SCOORD,
        annotation_groups=made,
        series_instance_uid=hd.UID(),
        series_number=1,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="collab",
        manufacturer_model_name="collab",
        software_versions=version,
        device_serial_number="collab",
    )
    out = io.BytesIO()
    instance.save_as(out)
    return out.getvalue()


def read_dicom_annotations(data: bytes) -> tuple[Imported, str | None]:
    """The shapes in a Microscopy Bulk Simple Annotations file, and the SOP Instance UID of the
    image it references (None if it names none)."""
    import pydicom
    from highdicom.ann import AnnotationCoordinateTypeValues, MicroscopyBulkSimpleAnnotations

    try:
        dataset = pydicom.dcmread(io.BytesIO(data))
        instance = MicroscopyBulkSimpleAnnotations.from_dataset(dataset)
        groups = instance.get_annotation_groups()
    except Exception as exc:  # pydicom and highdicom raise many kinds for a file they cannot read
        raise ImportRefused(f"This is no DICOM Microscopy Bulk Simple Annotations file ({exc}).") from None
    if instance.AnnotationCoordinateType != AnnotationCoordinateTypeValues.SCOORD.value:
        raise ImportRefused(
            "Only 2D (SCOORD) annotations in image pixels are imported, not 3D slide coordinates."
        )
    result = Imported()
    for group in groups:
        names, values, _ = group.get_measurements()
        meanings = [str(name.meaning) for name in names]
        shapes = group.get_graphic_data(AnnotationCoordinateTypeValues.SCOORD)
        for index, points in enumerate(shapes):
            shape = _shape(group.graphic_type.value, np.asarray(points, dtype=float))
            if shape is None:
                continue
            shape["label"] = str(group.label)[:MAX_LABEL]
            shape["color"] = "#e6194b"
            if meanings and index < len(values):
                shape["measurements"] = {
                    m: float(v) for m, v in zip(meanings, values[index], strict=False) if np.isfinite(v)
                }
            result.shapes.append(shape)
            if len(result.shapes) > MAX_FEATURES:
                raise ImportRefused(
                    f"Over {MAX_FEATURES:,} annotations: at most that many are imported at once."
                )
    references = getattr(instance, "ReferencedImageSequence", None) or []
    referenced = str(references[0].ReferencedSOPInstanceUID) if references else None
    return result, referenced


def _shape(graphic: str, points: np.ndarray) -> dict[str, Any] | None:
    if points.ndim != 2 or points.shape[1] < 2 or not np.isfinite(points).all():
        return None
    xy = [[round(float(x), 1), round(float(y), 1)] for x, y in points[:, :2]]
    if graphic == "POINT":
        return {"kind": "point", "points": xy[:1]}
    if graphic == "POLYLINE":
        return (
            {"kind": "line", "points": xy}
            if len(xy) == 2
            else {"kind": "freehand", "points": xy, "closed": False}
        )
    if graphic == "RECTANGLE" and len(xy) >= 3:
        xs, ys = [p[0] for p in xy], [p[1] for p in xy]
        return {"kind": "rect", "points": [[min(xs), min(ys)], [max(xs), max(ys)]]}
    if graphic == "ELLIPSE" and len(xy) == 4:
        xs, ys = [p[0] for p in xy], [p[1] for p in xy]
        return {"kind": "ellipse", "points": [[min(xs), min(ys)], [max(xs), max(ys)]]}
    if graphic == "POLYGON" and len(xy) >= 3:
        return {"kind": "polygon", "points": xy}
    return None
