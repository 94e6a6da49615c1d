"""Reconstruct the VG-200 category names from Visual Genome's objects.json.

The VG-200 release has class indices but no names. This tool counts the
object names of Visual Genome's raw annotations (lower-cased, stripped,
inner whitespace collapsed), keeps the C most frequent (C = the label
file's class count; equal counts in alphabetical order) and, given the
label file, puts them into its class-index order by matching each index's
images with each name's images. The result is a RECONSTRUCTION: the
authors' own list is not published, so it cannot be checked against it;
the printed agreement says how well each name fits its index.

Examples:
    python tools/misc/vg200_names.py objects.json data/VG/vg200_names.txt \
        --label-file data/VG/vg_category_200_labels_index.json
    python tools/misc/vg200_names.py objects.json names.txt \
        --label-file data/VG/vg_category_200_labels_index.json \
        --aliases object_alias.txt --count objects --details names.tsv
"""
import argparse
import os.path as osp
import statistics
import time

from mmengine.utils import ProgressBar

from sarb_mm.datasets.vg_names import COUNT_MODES, reconstruct_vg_names
from sarb_mm.utils.launch import run_tool
from sarb_mm.utils.paths import atomic_open, check_output_file

# Agreement (Jaccard) below which an index's name is called a guess.
WEAK = 0.5


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('objects', help="Visual Genome's objects.json")
    parser.add_argument('out', help='output text file, one name per line')
    parser.add_argument(
        '--label-file',
        help='vg_category_200_labels_index.json of the VG-200 release: '
        'checks the class count and gives the class-index order')
    parser.add_argument('--num-classes', type=int, default=200)
    parser.add_argument(
        '--count',
        choices=COUNT_MODES,
        default='images',
        help='rank names by the images they occur in (default) or by '
        'their objects')
    parser.add_argument(
        '--aliases',
        help="Visual Genome's object_alias.txt: merge aliases "
        'into their canonical name before counting')
    parser.add_argument(
        '--details',
        help='also write a tab-separated table: index, name, '
        'frequency and agreement with the label file')
    parser.add_argument(
        '--max-listed',
        type=int,
        default=20,
        help='weakly matched indices listed (default: 20)')
    return parser.parse_args()


def main():
    args = parse_args()
    # Before the pass over objects.json (minutes on the real file).
    inputs = [args.objects, args.label_file, args.aliases]
    check_output_file(args.out, 'Output', inputs=inputs)
    if args.details:
        check_output_file(
            args.details, '--details', inputs=inputs + [args.out])
    size = osp.getsize(args.objects) if osp.isfile(args.objects) else 0
    bar = ProgressBar(max(1, size // 2**20)) if size else None
    start = time.perf_counter()

    def progress(num_bytes):
        # Whole MiB only: ProgressBar counts tasks.
        progress.read += num_bytes
        mib = progress.read // 2**20 - progress.shown
        if bar is not None and mib > 0:
            bar.update(mib)
            progress.shown += mib

    progress.read = progress.shown = 0
    result = reconstruct_vg_names(args.objects, args.label_file,
                                  args.num_classes, args.count, args.aliases,
                                  progress)
    seconds = time.perf_counter() - start
    if bar is not None:
        print()
    counts = result.counts
    distinct = len(counts.image_counts)
    print(f'Read {counts.num_images} images and {counts.num_objects} objects '
          f'({distinct} distinct names) from {args.objects} '
          f'({size / 2**20:.0f} MiB) in {seconds:.1f} s.')
    by = 'images they occur in' if args.count == 'images' else 'objects'
    last = result.ranked[-1]
    print(f'Kept the {len(result.names)} names with the most {by} (the last '
          f'one, {last!r}, has {result.frequency(last)}).')
    if result.matches is None:
        print('No --label-file: the names are in frequency order, which is '
              'NOT known to be the class-index order of the label file. '
              'Give --label-file to order them by the label file.')
    else:
        report_matches(result, args.max_listed)
    write_lines(args.out, result.names)
    print(f'Wrote {len(result.names)} names to {args.out}.')
    if args.details:
        rows = [
            'index\tname\tfrequency\tindex_images\tname_images\tboth'
            '\tjaccard'
        ]
        for i, name in enumerate(result.names):
            row = f'{i}\t{name}\t{result.frequency(name)}'
            if result.matches is not None:
                m = result.matches[i]
                row += (f'\t{m.index_images}\t{m.name_images}\t{m.both}'
                        f'\t{m.jaccard:.4f}')
            rows.append(row)
        write_lines(args.details, rows)
        print(f'Wrote the details to {args.details}.')
    print('NOTE: this list is a reconstruction from Visual Genome\'s raw '
          'annotations. The authors did not publish theirs, so it cannot be '
          'verified against it; treat names of weakly matched indices as '
          'guesses.')


def report_matches(result, max_listed):
    matches = result.matches
    jaccard = [m.jaccard for m in matches]
    print(f'Label file: {result.label_images} images, '
          f'{result.shared_images} of them found in the objects file. '
          'Names put into class-index order by image agreement.')
    print(f'Agreement (Jaccard index of the images of an index and of its '
          f'name): median {statistics.median(jaccard):.3f}, minimum '
          f'{min(jaccard):.3f}; {sum(j >= 0.9 for j in jaccard)} of '
          f'{len(jaccard)} indices >= 0.9.')
    weak = [m for m in matches if m.jaccard < WEAK]
    if weak:
        print(f'{len(weak)} indices agree weakly (< {WEAK}) with their '
              'name; those names are guesses:')
        for m in weak[:max_listed]:
            print(f'  index {m.index}: {m.name!r} (jaccard {m.jaccard:.3f}; '
                  f'{m.index_images} images with the index, {m.name_images} '
                  f'with the name, {m.both} with both)')
        if len(weak) > max_listed:
            print(f'  ... and {len(weak) - max_listed} more (see --details)')


def write_lines(path, lines):
    with atomic_open(path, 'w', encoding='utf-8') as f:
        f.write(''.join(f'{line}\n' for line in lines))


if __name__ == '__main__':
    run_tool(main)
