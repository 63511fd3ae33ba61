"""The two STAR files of every IsoNet2 protocol run, and their summary lines.

- ``extra/isonet2_tomograms.star`` (:data:`isonet2scipion.constants.TOMOGRAMS_STAR`): what the
  core runs on, in the layout the official IsoNet2 program runs as it is (``rlnTomoName`` the full
  map's path, ``None`` for empty cells) when the tomograms' file names give their tsIds, else in
  the RELION-5 layout (:func:`isonet2scipion.convert.run_layout`).
- ``extra/relion5/tomograms.star`` and, beside it, the tilt series' STAR files: for reliontomo /
  RELION-5 (:mod:`isonet2scipion.relion_export`).
"""
import glob
import os
from typing import Dict, List, Sequence, Tuple

from isonet2scipion import convert, ctf_inputs, relion_export
from isonet2scipion.constants import TOMOGRAMS_STAR


class StarExportMixin:
    """Writes the RELION-5 export next to the run's STAR; summary lines naming both files."""

    def _relion5Folder(self) -> str:
        return self._getExtraPath(relion_export.RELION5_DIR)

    def _relion5StarPath(self) -> str:
        return os.path.join(self._relion5Folder(), relion_export.RELION5_TOMOGRAMS_STAR)

    def _exportSeries(self, tsIds) -> Tuple[Dict[str, object], Dict[str, object]]:
        """``({plain tsId: TiltSeries}, {plain tsId: CTFTomoSeries})`` of ``tsIds``: the given tilt
        series, else those of the CTF estimations (the ones the pixel size comes from too)."""
        tsSet = getattr(self, "inputTiltSeries", None)
        ctfSet = getattr(self, "inputCtfs", None)
        tsSet = tsSet.get() if tsSet is not None else None
        ctfSet = ctfSet.get() if ctfSet is not None else None
        series, ctfs = {}, {}
        if tsSet is not None:
            items = {ts.getTsId(): ts.clone(ignoreAttrs=[]) for ts in tsSet.iterItems()}
            series = ctf_inputs.by_plain_ts_id(items, "tilt series")[0]
        if ctfSet is not None:
            items = {c.getTsId(): c.clone(ignoreAttrs=[]) for c in ctfSet.iterItems()}
            ctfs = ctf_inputs.by_plain_ts_id(items, "CTF estimations")[0]
            for tsId, ctf in ctfs.items():
                if tsId not in series:
                    try:
                        series[tsId] = ctf_inputs.linked_tilt_series(ctf).clone(ignoreAttrs=[])
                    except ValueError:
                        pass
        keep = set(tsIds)
        return ({t: s for t, s in series.items() if t in keep},
                {t: c for t, c in ctfs.items() if t in keep})

    def exportRelion5(self, entries: Sequence[convert.TomoEntry]) -> None:
        """Write ``extra/relion5/tomograms.star`` and the tilt series' STAR files. A failure is
        logged, never raised: this export is for another program, the run does not need it."""
        try:
            refSet = self._referenceSet()
            tsIds = [e.ts_id for e in entries]
            tomos = {ctf_inputs.plain_ts_id(t.getTsId()): t.clone() for t in refSet.iterItems()}
            tomos = {t: tomos[t] for t in tsIds}
            series, ctfs = self._exportSeries(tsIds)
            halves = {e.ts_id: _asStored(tomos[e.ts_id], e.even, e.odd)
                      for e in entries if e.has_halves}
            folder = self._relion5Folder()
            records = relion_export.relion5_records(tomos, series, folder, half_maps=halves,
                                                    set_acquisition=refSet.getAcquisition())
            relion_export.write_relion5_star(records, self._relion5StarPath())
            written, notes = relion_export.write_tilt_series_stars(series, ctfs, folder)
            self.info(f"RELION-5 export: {self._relion5StarPath()}, tilt-series STAR files for "
                      f"{len(written)} of {len(tsIds)} tomograms")
            for note in notes:
                self.info(f"RELION-5 export: {note}")
        except Exception as exc:  # an export for another program never fails the run
            self.warning(f"The RELION-5 export ({self._relion5StarPath()}) was not written: "
                         f"{type(exc).__name__}: {exc}")

    def _starFilesSummary(self, entries: Sequence[convert.TomoEntry], limit: int = 6) -> List[str]:
        """Which STAR file each program takes, and where the tilt-series pixel size came from."""
        lines = [f"Tilt-series pixel {e.ts_id}: {e.tilt_series_pixel_size_a:g} Å, binning "
                 f"{e.binning:g} ({e.ts_pixel_source})" for e in entries[:limit]]
        runStar = self._getExtraPath(TOMOGRAMS_STAR)
        if os.path.exists(runStar):
            if entries and convert.run_layout(entries) == "isonet2":
                lines.append(f"STAR for the official IsoNet2 and this plugin's core: {runStar}")
            else:
                lines.append(f"STAR of this plugin's core: {runStar} (RELION-5 layout: the file "
                             f"names do not give the tsIds, so the official IsoNet2 cannot name "
                             f"the tomograms from it)")
        relionStar = self._relion5StarPath()
        if os.path.exists(relionStar):
            tsStars = [p for p in glob.glob(os.path.join(self._relion5Folder(), "*.star"))
                       if os.path.abspath(p) != os.path.abspath(relionStar)]
            lines.append(f"STAR for reliontomo / RELION-5: {relionStar} (tilt-series STAR files: "
                         f"{len(tsStars)}; paths relative to the project folder)")
        return lines


def _asStored(tomo, *paths) -> Tuple[str, ...]:
    """``paths`` (absolute) written as Scipion stores the tomogram's file: relative to the project
    folder (the working directory) when that file name is relative."""
    if os.path.isabs(tomo.getFileName()):
        return paths
    return tuple(os.path.relpath(p) for p in paths)
