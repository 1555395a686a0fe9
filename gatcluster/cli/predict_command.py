"""The run loop of `gat predict`: stream files -> batches -> ONNX Runtime -> table, with a summary.

Exit codes (gatcluster/exit_codes.py): 0 every input clustered; 3 some inputs skipped (each listed
with its reason); 1 nothing could be clustered (no images, unusable model, no GPU for --device cuda)
or an output could not be written (checked before any image is read, and again while writing).
"""

from __future__ import annotations

import errno
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import Progress

from gatcluster.atomic import WriteError, file_target
from gatcluster.cli.sort_into import ClusterSorter, cluster_folders
from gatcluster.data.parallel import decode_workers
from gatcluster.data.walk import (
    SkippedFile,
    is_output_folder,
    left_out_note,
    listed,
    mark_output_folder,
    walk_files,
)
from gatcluster.evaluation.gallery import GalleryCollector, cluster_cards, save_gallery
from gatcluster.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_SOME_SKIPPED, EXIT_USAGE
from gatcluster.path_kind import Kind, nearest_existing, not_a_folder
from gatcluster.path_text import one_line, path_text, shown_path
from gatcluster.pipeline.progress import count_columns
from gatcluster.serving.contract import ModelContract, ModelFileError, read_contract
from gatcluster.serving.onnx_predict import (
    DeviceError,
    Prediction,
    batches,
    looks_like_image,
    open_session,
    predict_batch,
)
from gatcluster.serving.outputs import TableWriter

SHOWN_SKIPS = 20
CLUSTER_COLUMNS = (
    "columns: cluster = the model's output index; cluster_name = the name stored in the model "
    "(the class that cluster matched at evaluation, or 'cluster <k>' for unlabelled training data)"
)


@dataclass(frozen=True)
class PredictOptions:
    """What `gat predict` was asked to do."""

    model: Path
    out: Path | None
    fmt: str
    batch_size: int
    device: str
    threads: int | None
    attention_dir: Path | None
    verbose: bool = False
    gallery: Path | None = None
    gallery_members: int = 16
    sort_into: Path | None = None
    copy: bool = False
    model_label: str | None = None  # how the user named the model (a models:/ URI), for messages


@dataclass
class Tally:
    """Counts for the summary."""

    clustered: int = 0
    ignored: int = 0
    skipped: list[SkippedFile] = field(default_factory=list)
    sizes: dict[int, int] = field(default_factory=dict)
    sorted: int = 0
    renamed: int = 0
    already_sorted: int = 0
    sorted_elsewhere: int = 0  # inputs an earlier run put into another cluster folder
    output_folders: list[Path] = field(default_factory=list)  # earlier runs' output, left out


def resolved(path: Path) -> Path:
    """`path` absolute, with the symbolic links of its folders resolved but not a link at its end: a
    link that --sort-into made stays where it is, while a file reached through a linked folder is
    found where it lies."""
    return Path(os.path.realpath(path.parent)) / path.name


def holds_an_input(folder: Path, paths: list[Path]) -> bool:
    """Whether `folder` is one of the input paths or holds one (`photos --sort-into photos`), links
    resolved (`link --sort-into photos` where link points at photos)."""
    root = Path(os.path.realpath(folder))
    # Both ways: a named folder may be a link to the inputs, a named file a link --sort-into made.
    return any(
        resolved(path).is_relative_to(root) or Path(os.path.realpath(path)).is_relative_to(root)
        for path in paths
    )


def cluster_folders_among_inputs(paths: list[Path], opts: PredictOptions, names: list[str]) -> list[Path]:
    """The cluster folders of a --sort-into folder that holds the inputs (`photos --sort-into
    photos`), where they are or will be: DIR/<cluster folder name>. None for any other --sort-into."""
    if opts.sort_into is None or not holds_an_input(opts.sort_into, paths):
        return []
    return [opts.sort_into / name for name in cluster_folders(names)]


def users_folders_in_the_way(paths: list[Path], opts: PredictOptions, names: list[str]) -> list[Path]:
    """Cluster folders among the inputs that are the user's own (`photos/3/` where a cluster is
    named 3): their pictures are inputs, and links sorted into them would be read as inputs later."""
    folders = cluster_folders_among_inputs(paths, opts, names)
    if not folders and opts.sort_into is not None:
        # A cluster folder that leads to the inputs (`sorted/3 -> photos`, a link of the user's):
        # links sorted into it would land among the pictures they point at.
        under = (opts.sort_into / name for name in cluster_folders(names))
        folders = [folder for folder in under if folder.is_dir() and holds_an_input(folder, paths)]
    return [folder for folder in folders if folder.is_dir() and not is_output_folder(folder)]


def own_output_folders(paths: list[Path], opts: PredictOptions, names: list[str]) -> tuple[Path, ...]:
    """The folders this command writes into, whose files are never inputs: each output folder; but
    of a --sort-into folder that holds the inputs (`photos --sort-into photos`, `lib/new
    --sort-into lib`) only the cluster folders an earlier run made (marked), the rest of it being
    what the user asked to cluster. (--gallery and --attention-dir never hold an input: the command
    refuses that; nor do the user's own folders where a cluster folder would go: `run_predict`.)"""
    own = [folder for folder in (opts.gallery, opts.attention_dir) if folder is not None]
    among_inputs = cluster_folders_among_inputs(paths, opts, names)
    if among_inputs:
        own += [folder for folder in among_inputs if is_output_folder(folder)]
    elif opts.sort_into is not None:
        own.append(opts.sort_into)
    return tuple(own)


def outputs_hiding_inputs(paths: list[Path], outputs: tuple[Path, ...]) -> list[Path]:
    """This run's output folders that sit inside an input folder and already hold images of the
    user's (not marked as `gat predict` output): the run leaves their files out, so photos there
    would go unclustered without a word, and the pictures it adds would be clustered with them next
    time (a folder that held files is not marked)."""
    input_folders = [Path(os.path.realpath(p)) for p in paths if p.is_dir()]
    hiding = []
    for folder in outputs:
        real = Path(os.path.realpath(folder))
        if (
            holds_an_input(folder, paths)
            or not any(real.is_relative_to(f) for f in input_folders)
            or is_output_folder(folder)
        ):
            continue
        if any(isinstance(item, Path) and looks_like_image(item) for item in walk_files([folder])):
            hiding.append(folder)
    return hiding


def image_inputs(
    paths: list[Path], tally: Tally, outputs: tuple[Path, ...] = ()
) -> Iterator[Path | SkippedFile]:
    """Walked inputs that are images by suffix or content; other files are counted as ignored.

    Files inside the `outputs` folders (`own_output_folders`) are never inputs: with one of them
    inside an input folder, a second run would otherwise cluster its own links, gallery and
    overlays too. (A folder of ours carries the output marker as well, which keeps it out of later
    walks that do not name it: `data.walk`.) What the user names inside one is read, as a marked
    folder named as an input is.
    """
    own = [Path(os.path.realpath(f)) for f in outputs if not holds_an_input(f, paths)]
    marked: list[Path] = []
    real_folders: dict[Path, Path] = {}  # a walk yields a folder's files together: resolved once

    def inside_own(item: Path) -> bool:
        if item.parent not in real_folders:
            real_folders[item.parent] = resolved(item).parent
        return any(real_folders[item.parent].is_relative_to(o) for o in own)

    for item in walk_files(paths, marked):
        if own and isinstance(item, Path) and inside_own(item):
            continue
        if isinstance(item, SkippedFile) or looks_like_image(item):
            yield item
        else:
            tally.ignored += 1
    # This run's own output folders are left out as asked; earlier runs' are worth a word. Compared
    # with links resolved: an input reached through a symbolic link walks the same folders.
    own_real = {os.path.realpath(folder) for folder in outputs}
    tally.output_folders = [f for f in marked if os.path.realpath(f) not in own_real]


def write_attention(predictions: list[Prediction], folder: Path, offset: int) -> None:
    """An overlay PNG per image, on the fitted image the model saw: <index>_<cluster>_<file stem>.png."""
    from gatcluster.evaluation.pictures import attention_overlay

    folder.mkdir(parents=True, exist_ok=True)
    for i, p in enumerate(predictions, start=offset):
        image = p.image.transpose(2, 0, 1)  # (S, S, 3) -> (3, S, S)
        scale = max(1, 256 // max(image.shape[1:]))
        overlay = attention_overlay(image, p.att_map, scale=scale)
        overlay.save(folder / f"{i:06d}_c{p.cluster}_{p.path.stem[:60]}.png")


class Extras:
    """What --gallery and --sort-into do with each batch of predictions, besides the table."""

    def __init__(self, opts: PredictOptions, contract: ModelContract, paths: list[Path]) -> None:
        self.opts = opts
        self.names = list(contract.cluster_names)
        self.collector = None
        self.sorter = None
        if opts.gallery is not None:
            self.collector = GalleryCollector(contract.num_clusters, opts.gallery_members, seed=0)
        if opts.sort_into is not None:
            among_inputs = holds_an_input(opts.sort_into, paths)
            self.sorter = ClusterSorter(opts.sort_into, self.names, opts.copy, mark_folders=among_inputs)

    def take(self, predictions: list[Prediction], tally: Tally) -> None:
        """Offer each prediction to the gallery; link or copy each input into its cluster folder."""
        for p in predictions:
            if self.collector is not None:
                image = np.ascontiguousarray(np.transpose(p.image, (2, 0, 1)))
                self.collector.add(p.cluster, p.confidence, image, p.att_map, path_text(p.path))
            if self.sorter is not None:
                placed = self.sorter.place(p.path, p.cluster)
                tally.sorted += not placed.already_there
                tally.renamed += placed.renamed
                tally.already_sorted += placed.already_there
                tally.sorted_elsewhere += placed.elsewhere

    def finish(self, tally: Tally) -> None:
        """Write the gallery (after every image was seen); nothing when no image was clustered, so
        an earlier run's gallery in that folder stays, as its table does."""
        if self.collector is None or self.opts.gallery is None or tally.clustered == 0:
            return
        model = self.opts.model_label or self.opts.model
        note = (
            f"{tally.clustered} images clustered by {model}. Per cluster: its "
            f"{self.collector.members} most confident members, then {self.collector.members} drawn at "
            "random; attention maps in red. Hover a picture for its file."
        )
        cards = cluster_cards(self.collector, self.names)
        save_gallery(cards, self.opts.gallery, self.opts.gallery / "gallery.html", "Clusters", note)


def cluster_all(
    paths: list[Path], opts: PredictOptions, contract: ModelContract, session, console: Console
) -> Tally:
    """Stream every input through the model into the output table; the tally."""
    tally = Tally()
    extras = Extras(opts, contract, paths)
    outputs = own_output_folders(paths, opts, list(contract.cluster_names))
    inputs = list(image_inputs(paths, tally, outputs))  # paths only (cheap): the bar gets a total, an ETA
    # closing: an error on a batch (a full disk) stops the decoding threads before it is reported
    grouped = batches(iter(inputs), contract, opts.batch_size, decode_workers(opts.threads))
    with (
        TableWriter(opts.out, opts.fmt, contract.num_clusters) as table,
        Progress(*count_columns(), console=console) as bar,
        closing(grouped),
    ):
        # Every input counts once, clustered or skipped, so the bar ends full.
        task = bar.add_task("predict", total=len(inputs))
        for batch_paths, batch, skipped in grouped:
            tally.skipped += skipped
            if batch is not None:
                predict_into(predict_batch(session, contract, batch_paths, batch), opts, table, extras, tally)
            bar.update(task, advance=len(batch_paths) + len(skipped))
        extras.finish(tally)
    return tally


def predict_into(
    predictions: list[Prediction], opts: PredictOptions, table: TableWriter, extras: Extras, tally: Tally
) -> None:
    """One batch's predictions into the table, the attention overlays and extras, and the tally."""
    if opts.attention_dir is not None:
        write_attention(predictions, opts.attention_dir, tally.clustered)
    table.write(predictions)
    extras.take(predictions, tally)
    tally.clustered += len(predictions)
    for p in predictions:
        tally.sizes[p.cluster] = tally.sizes.get(p.cluster, 0) + 1


def check_outputs_writable(opts: PredictOptions, names: list[str]) -> None:
    """Create the output folders and prove they take a file, before any image is read (OSError).

    Of --sort-into the cluster folders that exist already (an earlier run's, maybe another user's)
    are probed too; those still to be made are made by this command, in a folder that took a file."""
    if opts.out is not None:
        file_target(opts.out)  # a device, FIFO or folder named as --out: refused now, not at the end
    outputs = [f for f in (opts.attention_dir, opts.gallery, opts.sort_into) if f is not None]
    # Judged before any folder is made (--sort-into out --gallery out/gallery makes `out`): a folder
    # new or empty now will hold this command's output only, never the user's own pictures.
    fresh = [f for f in outputs if not (f.is_dir() and any(f.iterdir()))]
    if opts.sort_into is not None:
        # Existing ones only, and whatever stands where one would go (a file, a broken link): named now.
        under = (opts.sort_into / name for name in cluster_folders(names))
        outputs += [f for f in under if f.is_dir() or os.path.lexists(f)]
    named = [(opts.out.parent, opts.out)] if opts.out is not None else []
    for folder, what in named + [(folder, folder) for folder in outputs]:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as err:  # "File exists" alone named no culprit
            found = nearest_existing(folder)
            said = not_a_folder(*found) if found is not None else f"{shown_path(folder)} is no folder"
            raise OSError(err.errno, said, str(what)) from None
        except FileNotFoundError as err:  # the folders above are there: a virtual file system (/proc)
            raise OSError(err.errno, probe_failure(err, folder), str(what)) from None
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
            if folder in fresh:
                mark_output_folder(folder)
        except OSError as err:  # name the user's file or folder, not the probe's random file
            raise OSError(err.errno, probe_failure(err, folder), str(what)) from err


def probe_failure(err: OSError, path: Path) -> str:
    """Why a file or folder could not be made at `path`: the system's reason, except where a virtual
    file system (/proc) answers "No such file or directory" about a folder that is there."""
    found = nearest_existing(path)
    if err.errno == errno.ENOENT and found is not None and found[1].kind is Kind.FOLDER:
        return f"{shown_path(found[0])} takes no new files or folders (its file system said: {err.strerror})"
    return err.strerror or type(err).__name__


def write_error(err: OSError) -> str:
    """One line for a failed write: which path and why (and what was kept, where known).

    Of a call with two paths (os.symlink(source, link), os.rename) the second is the one written:
    a link that cannot be made is named, not the user's picture it points to."""
    if isinstance(err, WriteError):
        return f"error: {err.strerror}"
    written = err.filename2 or err.filename
    where = shown_path(written) if written is not None else "the output"
    return f"error: cannot write {where}: {err.strerror or err}"


def print_summary(tally: Tally, names: list[str], seconds: float, provider: str, console: Console) -> None:
    """Images, clusters (by number, and name where it has one), skipped (each with its reason),
    images/s and the provider that ran."""
    rate = tally.clustered / seconds if seconds > 0 else 0.0
    used = ", ".join(f"{cluster_label(k, names[k])}: {n}" for k, n in sorted(tally.sizes.items()))
    console.print(
        f"{counted(tally.clustered, 'image')} in {counted(len(tally.sizes), 'cluster')} ({used or 'none'}); "
        f"{len(tally.skipped)} skipped; {counted(tally.ignored, 'non-image file')} ignored; "
        f"{rate:.1f} images/s on {provider}",
        highlight=False,
        markup=False,  # cluster names come from the model file: `[/x]` is a name, not rich markup
    )
    for item in tally.skipped[:SHOWN_SKIPS]:
        console.print(f"skipped {shown_path(item.path)}: {item.reason}", highlight=False, markup=False)
    if len(tally.skipped) > SHOWN_SKIPS:
        console.print(f"... and {len(tally.skipped) - SHOWN_SKIPS} more skipped", highlight=False)
    if tally.output_folders:
        folders = [shown_path(f) for f in tally.output_folders]
        note = left_out_note(folders, SHOWN_SKIPS, "cluster its images")
        console.print(note, highlight=False, markup=False)


def cluster_label(cluster: int, name: str) -> str:
    """A cluster as the gallery heads it: `2 (cat)`, or `2` alone where its name is `cluster 2`. The
    name is what --sort-into names its folder; the number is the table's `cluster` column."""
    return str(cluster) if name == f"cluster {cluster}" else f"{cluster} ({one_line(name)})"


def counted(n: int, noun: str) -> str:
    """`1 image`, `2 images`."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def report_extras(opts: PredictOptions, tally: Tally, console: Console) -> None:
    """Where the gallery and the sorted inputs went."""
    if opts.gallery is not None:
        page = opts.gallery / "gallery.html"
        console.print(f"wrote the cluster gallery {shown_path(page)}", highlight=False, markup=False)
    if opts.sort_into is not None:
        how = "copied" if opts.copy else "linked"
        line = f"{how} {tally.sorted} images into {shown_path(opts.sort_into)}/<cluster name>/"
        if tally.renamed:
            line += f"; {tally.renamed} renamed with a number because the name was taken"
        if tally.already_sorted:
            line += f"; {tally.already_sorted} were already there (left as they were)"
        if tally.sorted_elsewhere:
            line += (
                f"; {tally.sorted_elsewhere} are also in another cluster folder, where an earlier run"
                " put them (left there: sort into an empty folder for a sort of this model alone)"
            )
        console.print(line, highlight=False, markup=False)


def run_predict(paths: list[Path], opts: PredictOptions) -> int:
    """Run `gat predict`; the exit code. Messages go to stderr, the table to stdout or --out."""
    console = Console(stderr=True, soft_wrap=True)  # paths and reasons stay on one line each
    try:
        contract = read_contract(opts.model)
        session, provider = open_session(opts.model, opts.device, opts.threads, opts.verbose)
    except (ModelFileError, DeviceError) as err:
        console.print(f"error: {err}", highlight=False, markup=False)
        return EXIT_FAILED
    names = list(contract.cluster_names)
    in_the_way = users_folders_in_the_way(paths, opts, names)
    if in_the_way:
        folders = listed([shown_path(f) for f in in_the_way], SHOWN_SKIPS)
        where = (
            f"--sort-into {shown_path(opts.sort_into)} holds the inputs, and {folders}"
            if holds_an_input(opts.sort_into, paths)
            else f"{folders} under --sort-into {shown_path(opts.sort_into)} lead to the inputs and"
        )
        console.print(
            f"error: {where} would take links of a cluster of that name among pictures of yours:"
            f" sort into a folder of its own, e.g. --sort-into {shown_path(opts.sort_into / 'sorted')}",
            highlight=False,
            markup=False,
        )
        return EXIT_USAGE
    if hiding := outputs_hiding_inputs(paths, own_output_folders(paths, opts, names)):
        console.print(
            f"error: {listed([shown_path(f) for f in hiding], SHOWN_SKIPS)}: inside the inputs and"
            " already holding images of yours, which this run would leave out unclustered: name an"
            " empty folder, or one outside the inputs",
            highlight=False,
            markup=False,
        )
        return EXIT_USAGE
    started = time.perf_counter()
    try:
        check_outputs_writable(opts, names)
        tally = cluster_all(paths, opts, contract, session, console)
    except OSError as err:  # the table is written atomically: a failed write leaves no file
        console.print(write_error(err), highlight=False, markup=False)
        return EXIT_FAILED
    print_summary(tally, names, time.perf_counter() - started, provider, console)
    if tally.clustered == 0:
        console.print("error: no image could be clustered; no table written", highlight=False)
        return EXIT_FAILED
    if opts.out is not None:
        written = f"wrote {tally.clustered} rows to {shown_path(opts.out)}"
        console.print(written, highlight=False, markup=False)
    report_extras(opts, tally, console)
    console.print(CLUSTER_COLUMNS, highlight=False)
    return EXIT_SOME_SKIPPED if tally.skipped else EXIT_OK
