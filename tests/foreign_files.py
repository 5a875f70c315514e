"""Writers of small files in the foreign formats, made with the formats' own libraries (h5py
for Data Exchange, the ``ismrmrd`` package for ISMRMRD, pydicom for DICOM), from the project's
simulated measurements and phantoms."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from napari_ddip.io import Measurement

FLAT, DARK = 1000.0, 50.0


def write_dxchange(
    path: Path,
    m: Measurement,
    extra_columns: int = 0,
    theta_units: str | None = "degrees",
    flats: bool = True,
    darks: bool = True,
    resolution_um: float | None = None,
) -> None:
    """Projections ``(views, rows, columns)`` of CT measurement ``m``'s sinogram as detector
    counts ``D + (F − D)·exp(−p)``, with ``extra_columns`` of air appended on the right (the
    rotation axis then no longer projects onto the detector centre), flat and dark fields, and
    the angles in ``theta_units`` (None: no units attribute, values in radians)."""
    projections = np.pad(
        m.data.transpose(1, 0, 2), ((0, 0), (0, 0), (0, extra_columns)), constant_values=0.0
    )
    counts = DARK + (FLAT - DARK) * np.exp(-projections.astype(np.float64))
    angles = np.asarray(m.geometry["angles_deg"], np.float64)
    with h5py.File(path, "w") as f:
        data = counts.astype(np.float32)
        f.create_dataset("exchange/data", data=data, chunks=(1, 1, data.shape[2]))
        if flats:
            f["exchange/data_white"] = np.full((3, *counts.shape[1:]), FLAT, np.float32)
        if darks:
            f["exchange/data_dark"] = np.full((2, *counts.shape[1:]), DARK, np.float32)
        theta = np.deg2rad(angles) if theta_units in ("radians", "rad", None) else angles
        dataset = f.create_dataset("exchange/theta", data=theta)
        if theta_units is not None:
            dataset.attrs["units"] = theta_units
        if resolution_um is not None:
            res = "measurement/instrument/detection_system/objective/resolution"
            f.create_dataset(res, data=resolution_um).attrs["units"] = "um"


def _mrd_header(matrix: tuple[int, int, int], fov_mm: tuple[float, float, float], **extra):
    import ismrmrd.xsd as x

    space = x.encodingSpaceType(
        matrixSize=x.matrixSizeType(x=matrix[0], y=matrix[1], z=matrix[2]),
        fieldOfView_mm=x.fieldOfViewMm(x=fov_mm[0], y=fov_mm[1], z=fov_mm[2]),
    )
    limits = x.encodingLimitsType(
        kspace_encoding_step_1=x.limitType(minimum=0, maximum=matrix[1] - 1, center=matrix[1] // 2),
        kspace_encoding_step_2=x.limitType(minimum=0, maximum=matrix[2] - 1, center=matrix[2] // 2),
    )
    encoding = x.encodingType(
        encodedSpace=space,
        reconSpace=space,
        encodingLimits=limits,
        trajectory=extra.pop("trajectory", x.trajectoryType.CARTESIAN),
    )
    header = x.ismrmrdHeader(
        experimentalConditions=x.experimentalConditionsType(H1resonanceFrequency_Hz=63_500_000),
        encoding=[encoding],
    )
    return x.ToXML(header)


def write_mrd(
    path: Path,
    kspace: np.ndarray,
    mask: np.ndarray,
    voxel_size: tuple[float, float, float],
    three_d: bool = False,
    slice_order: list[int] | None = None,
    noise_scan: bool = True,
    counters: dict[str, int] | None = None,
    trajectory: str = "cartesian",
    averages: int = 1,
    calibration_lines: tuple[int, ...] = (),
) -> None:
    """An ISMRMRD file of k-space ``(Z, C, ky, kx)`` (C may be 1) sampled on the ky lines of
    ``mask`` ``(ky, kx)``: one acquisition per slice (or kz) and acquired line, written in
    ``slice_order`` with slice positions ``z · voxel_size[0]`` along +z; ``three_d`` makes Z
    the second phase-encoding direction; ``noise_scan`` puts a noise acquisition first (to be
    skipped); ``counters`` sets loop counters of the first line; each line is written
    ``averages`` times with offsets that average to zero; ``calibration_lines`` are written
    once more, flagged as parallel-imaging calibration."""
    import ismrmrd
    import ismrmrd.xsd as x

    nz, nc, ny, nx = kspace.shape
    vz, vy, vx = voxel_size
    matrix = (nx, ny, nz if three_d else 1)
    fov = (nx * vx, ny * vy, nz * vz if three_d else vz)
    xml = _mrd_header(matrix, fov, trajectory=x.trajectoryType(trajectory))
    lines = np.flatnonzero(mask.any(axis=1))
    with ismrmrd.Dataset(str(path), "dataset", create_if_needed=True) as dset:
        dset.write_xml_header(xml)
        if noise_scan:
            noise = np.ones((nc, nx), np.complex64) * 1e3
            acq = ismrmrd.Acquisition.from_array(noise)
            acq.setFlag(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
            dset.append_acquisition(acq)
        acquired = [(int(ky), a) for ky in lines for a in range(averages)]
        acquired += [(int(ky), -1) for ky in calibration_lines]
        for z in slice_order if slice_order is not None else range(nz):
            for n, (ky, average) in enumerate(acquired):
                offset = 0.0 if average < 0 else 10.0 * (average - (averages - 1) / 2)
                line = np.ascontiguousarray(kspace[z, :, ky, :] + offset, np.complex64)
                acq = ismrmrd.Acquisition.from_array(line, center_sample=nx // 2)
                acq.idx.kspace_encode_step_1 = ky
                acq.idx.average = max(average, 0)
                if average < 0:
                    acq.setFlag(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION)
                if three_d:
                    acq.idx.kspace_encode_step_2 = z
                else:
                    acq.idx.slice = z
                    acq.position[:] = (0.0, 0.0, z * vz)
                    acq.slice_dir[:] = (0.0, 0.0, 1.0)
                if n == 0:
                    for name, value in (counters or {}).items():
                        setattr(acq.idx, name, value)
                dset.append_acquisition(acq)


def write_dicom_series(
    folder: Path,
    volume: np.ndarray,
    voxel_size: tuple[float, float, float],
    slope: float = 0.001,
    intercept: float = -1.0,
    modality: str = "CT",
) -> np.ndarray:
    """One CT slice file per ``volume`` slice ``(Z, Y, X)``, int16 with ``slope`` and
    ``intercept``, slices at ``z · voxel_size[0]`` mm along +z and written under names in
    reverse order (so sorting by name would be wrong); returns the volume the files hold
    (quantised to ``slope``)."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    stored = np.round((volume - intercept) / slope).astype(np.int16)
    series = generate_uid()
    for z, image in enumerate(stored):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = folder / f"IM{len(stored) - z:04d}"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.SeriesInstanceUID, ds.InstanceNumber = modality, series, z + 1
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0.0, 0.0, z * voxel_size[0]]
        ds.PixelSpacing = [voxel_size[1], voxel_size[2]]
        ds.SliceThickness = voxel_size[0]
        ds.Rows, ds.Columns = image.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        ds.PixelData = image.tobytes()
        ds.save_as(path, enforce_file_format=True)
    return (stored.astype(np.float64) * slope + intercept).astype(np.float32)
