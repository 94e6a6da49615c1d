"""Readers of files from others keep their memory bounded.

A line, CSV row or JSON element padded far past its limit is refused with
the file and the line, after reading little more than the limit (measured
with ``tracemalloc``); the streaming JSON reader gives exactly what
``json.loads`` gives; path problems are named for what they are.
"""
import csv
import io
import json
import os
import os.path as osp
import re
import tracemalloc

import pytest

import sarb_mm  # noqa: F401
from sarb_mm.datasets import (JsonLinesPartialDataset, json_stream, openimages,
                              utils)
from sarb_mm.datasets.native_partial import read_class_file
from sarb_mm.datasets.openimages import (parse_openimages_labels,
                                         read_class_descriptions)
from sarb_mm.datasets.utils import (load_json_file, read_list_file,
                                    read_text_lines, require_dir, require_file)
from sarb_mm.datasets.vg_names import iter_json_array
from sarb_mm.utils.errors import InvalidInputError

KIB, MIB = 1024, 1024**2
# Far past every limit the tests set, and far above the memory they allow.
PADDING = 20 * MIB


def _refused_with_peak(read, match):
    """Run ``read``, which must raise InvalidInputError matching ``match``;
    return the peak of traced Python memory while it ran."""
    tracemalloc.start()
    try:
        with pytest.raises(InvalidInputError, match=match):
            read()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _write(path, *parts):
    with open(path, 'wb') as f:
        for part in parts:
            f.write(part)
    return str(path)


@pytest.fixture
def small_line_limit(monkeypatch):
    monkeypatch.setattr(utils, 'MAX_LINE_LENGTH', 64 * KIB)
    return 64 * KIB


# -- lines: JSON Lines, list and class files, OpenImages CSV ---------------


def test_jsonl_line_padded_past_the_limit(tmp_path):
    _write(tmp_path / 'classes.txt', b'cat\ndog\n')
    ann = _write(tmp_path / 'train.jsonl',
                 b'{"img": "a.jpg", "pos": ["cat"]}\n',
                 b'{"img": "' + b'x' * PADDING + b'.jpg"}\n')
    peak = _refused_with_peak(
        lambda: JsonLinesPartialDataset(
            data_root=str(tmp_path),
            missing_images='unchecked',
            max_record_bytes=64 * KIB),
        re.escape(f"JSON Lines file {ann!r}, line 2 is longer than 65,536 "
                  'bytes') + r'.*set max_record_bytes to a larger number')
    assert peak < 1 * MIB


@pytest.mark.parametrize('value', [0, -1, 1.5, True, '16MiB'])
def test_jsonl_max_record_bytes_must_be_a_positive_int(tmp_path, value):
    with pytest.raises(InvalidInputError, match='max_record_bytes must be'):
        JsonLinesPartialDataset(
            data_root=str(tmp_path), max_record_bytes=value)


def test_list_file_line_padded_past_the_limit(tmp_path, small_line_limit):
    path = _write(tmp_path / 'train.txt', b'1.jpg\n2.jpg\n', b'x' * PADDING)
    peak = _refused_with_peak(
        lambda: read_list_file(path, 'VG image list file'),
        re.escape(f'VG image list file {path!r}, line 3 is longer than '
                  '65,536 bytes') + r'.*MAX_LINE_LENGTH')
    assert peak < 1 * MIB


def test_class_file_line_padded_past_the_limit(tmp_path, small_line_limit):
    path = _write(tmp_path / 'classes.txt', b'cat\n' + b'x' * PADDING + b'\n')
    peak = _refused_with_peak(
        lambda: read_class_file(path, 'Class file'),
        re.escape(f'Class file {path!r}, line 2 is longer than 65,536 '
                  'bytes'))
    assert peak < 1 * MIB


@pytest.mark.parametrize('data', [
    b'', b'a\nb', b'\xef\xbb\xbfa\r\nb\r\n\r\n', b'a\rb\rc', b' a \n\n b\n',
    'a\x0bb\x0cc\x1cd\x85e\u2028f\u2029g\n'.encode(), b'\n\n', b'a\r\n\rb'
])
def test_lines_are_those_of_the_whole_text(tmp_path, data):
    # The lines (and so the line numbers of messages) are those the old
    # reader got from splitting the whole decoded text.
    path = _write(tmp_path / 'list.txt', data)
    lines = [line for _, line in read_text_lines(path, 'List file')]
    assert lines == data.decode('utf-8-sig').splitlines()
    numbers = [n for n, _ in read_text_lines(path, 'List file')]
    assert numbers == list(range(1, len(lines) + 1))


def test_text_file_not_utf8_names_byte_and_line(tmp_path):
    # The byte offset counts the byte order mark: it is the file's.
    path = _write(tmp_path / 'list.txt', b'\xef\xbb\xbfa.jpg\nb\xff.jpg\n')
    with pytest.raises(
            InvalidInputError,
            match=re.escape(f"{path!r} is not UTF-8 text (byte 10 is "
                            "b'\\xff'), on line 2")):
        read_list_file(path)


def _write_classes_csv(root):
    return _write(root / 'classes.csv', b'/m/cat,Cat\n/m/dog,Dog\n')


def test_openimages_label_row_padded_past_the_limit(tmp_path,
                                                    small_line_limit):
    classes = _write_classes_csv(tmp_path)
    labels = _write(tmp_path / 'labels.csv',
                    b'ImageID,Source,LabelName,Confidence\n',
                    b'img1,verification,/m/cat,1\n',
                    b'img2,verification,/m/' + b'x' * PADDING + b',1\n')
    peak = _refused_with_peak(
        lambda: parse_openimages_labels(labels, classes),
        re.escape(f'OpenImages label file {labels!r}, line 3 is longer '
                  'than 65,536 characters') + '.*MAX_LINE_LENGTH')
    assert peak < 1 * MIB


def test_openimages_class_row_padded_past_the_limit(tmp_path,
                                                    small_line_limit):
    path = _write(tmp_path / 'classes.csv', b'/m/cat,Cat\n/m/dog,',
                  b'D' * PADDING, b'\n')
    peak = _refused_with_peak(
        lambda: read_class_descriptions(path),
        re.escape(f'OpenImages class-description file {path!r}, line 2 is '
                  'longer than 65,536 characters'))
    assert peak < 1 * MIB


def test_openimages_row_of_many_quoted_lines_is_capped(tmp_path,
                                                       small_line_limit):
    # Short lines, each field under csv's field limit, but one row of
    # 16 MiB (3 million fields): the lines under one open quote are capped
    # together. (Lines and fields are small objects: some 40 bytes of
    # memory per character of the row read before the limit.)
    path = _write(tmp_path / 'classes.csv', b'/m/cat,Cat\n/m/dog,"Dog\n',
                  b'","a\n' * (16 * MIB // 5), b'"\n')
    peak = _refused_with_peak(
        lambda: read_class_descriptions(path),
        re.escape(f'OpenImages class-description file {path!r}, lines 2-') +
        r'\d+: the quoted field opened on line 2 is still open')
    assert peak < 4 * MIB


@pytest.mark.parametrize('block', [1, 7, 64 * KIB])
def test_csv_lines_equal_those_of_a_text_file(tmp_path, monkeypatch, block):
    # Split anywhere by tiny blocks, the rows are those csv.reader reads
    # from the file opened as text with newline=''.
    monkeypatch.setattr(openimages, '_CSV_BLOCK', block)
    text = ('\ufeffLabelName,DisplayName\r\n/m/a,"Two\nlines"\r\n'
            '/m/b,"Quote "" and, comma"\n/m/c,Caf\u00e9\r/m/d,"x\ry"\n'
            '/m/e,form\x0cfeed \x0bvt \x1cfs \x85nel \u2028ls\n\n'
            '/m/f,"a\r\nb"\r\n/m/g,last')
    path = _write(tmp_path / 'c.csv', text.encode())
    with open(path, encoding='utf-8-sig', newline='') as f:
        expected = csv.reader(f)
        expected_rows = list(expected)
    with open(path, 'rb') as f:
        reader = csv.reader(openimages._csv_lines(f, path, 'CSV file'))
        rows = list(reader)
    assert rows == expected_rows
    assert reader.line_num == expected.line_num == 12
    mids, names = read_class_descriptions(path)
    assert names[:2] == ['Two\nlines', 'Quote " and, comma']


# -- JSON ------------------------------------------------------------------

VALID_DOCUMENTS = [
    {
        'images': [{
            'id': 1,
            'file_name': 'caf\u00e9 \U0001F600 "q" \\ \n.jpg'
        }, {
            'id': 2,
            'file_name': 'b.jpg',
            'size': [480, 640]
        }],
        'annotations': [],
        'categories': [{
            'id': 7,
            'name': '\u732b'
        }],
        'info': {
            'nested': [[], {}, [{}], {
                'a': [None, True, False]
            }]
        },
        'numbers': [0, -0.0, 1.5e-300, 1e300, -12, 12345678901234567890]
    },
    [[1, 2], [], {}, 'x', 3.25, None, {
        'k': [{
            'k': []
        }]
    }],
    {},
    [],
    {
        'a': [],
        'b': {},
        'c': '',
        'd': [[]]
    },
    'just a string',
    -3.5e10,
    {
        '1.jpg': [1, 2],
        '2.jpg': [],
        '10.jpg': [0]
    },
]


@pytest.mark.parametrize('doc', VALID_DOCUMENTS)
@pytest.mark.parametrize('dump', [
    dict(),
    dict(indent=2),
    dict(separators=(',', ':')),
    dict(ensure_ascii=False, indent='\t'),
])
def test_load_json_file_equals_json_loads(tmp_path, doc, dump):
    text = json.dumps(doc, **dump)
    path = _write(tmp_path / 'a.json', text.encode())
    for chunk in (1, 3, 64, None):
        assert load_json_file(path, chunk_bytes=chunk) == json.loads(text)
    bom = _write(tmp_path / 'bom.json', b'\xef\xbb\xbf \r\n', text.encode(),
                 b'\n \t')
    assert load_json_file(bom, chunk_bytes=2) == json.loads(text)


@pytest.mark.parametrize('text', [
    '[1 2]', '{"a" 1}', '{"a": [1, 2}', '[1 ]]',
    '{"a":\n  [\n {"b": 1,\n "c": }]}', '[1]\n x', '{"a": tru}',
    '{"a": "x\ny"}', '[', '{"a":', '[{"a": 1', '{"a": [1] "b": 1}',
    '\n\n  [1, {"x": [1, 2,, 3]}]', '{"a": 1, 1: 2}', 'x', '[1, 2] ]',
    '{"images": [{"id": 1},\n {"id": 2,\n  "file_name": "a\\qb"}]}'
])
def test_invalid_json_names_line_and_column(tmp_path, text):
    # The same message, line and column as json.loads of the whole text.
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    e = expected.value
    path = _write(tmp_path / 'bad.json', text.encode())
    for chunk in (1, 4, None):
        with pytest.raises(
                InvalidInputError,
                match=re.escape(f'{path!r} is not valid JSON ({e.msg} at '
                                f'line {e.lineno}, column {e.colno})')):
            load_json_file(path, chunk_bytes=chunk)


def test_repeated_keys_are_found_at_every_level(tmp_path):
    path = _write(tmp_path / 'top.json', b'{"a": [], "b": 1, "a": 2}')
    with pytest.raises(InvalidInputError, match="key 'a' twice"):
        load_json_file(path)
    path = _write(tmp_path / 'deep.json',
                  b'{"images": [{"id": 1},\n{"id": 2, "id": 3}]}')
    with pytest.raises(
            InvalidInputError,
            match=r"key 'id' twice in one object \(in the value starting on "
            r'line 2\)'):
        load_json_file(path, chunk_bytes=5)


def test_json_not_utf8_names_byte_and_line(tmp_path):
    path = _write(tmp_path / 'a.json', b'\xef\xbb\xbf{"a":\n[1,\n"\xe9"]}')
    with pytest.raises(
            InvalidInputError,
            match=re.escape("is not UTF-8 text (byte 14 is b'\\xe9'), on "
                            'line 3')):
        load_json_file(path, chunk_bytes=4)


def test_coco_element_padded_past_the_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(json_stream, 'MAX_ELEMENT_CHARS', MIB)
    monkeypatch.setattr(json_stream, 'CHUNK_BYTES', 256 * KIB)
    head = ('{\n  "categories": [{"id": 1, "name": "cat"}],\n'
            '  "images": [\n    {\n      "id": 1,\n'
            '      "file_name": "a.jpg"\n    }')
    path = _write(tmp_path / 'instances.json', head.encode(),
                  b',\n    {\n      "id": 2,\n      "file_name": "',
                  b'x' * PADDING, b'.jpg"\n    }\n  ]\n}\n')
    line = head.count('\n') + 2
    peak = _refused_with_peak(
        lambda: load_json_file(path),
        re.escape(f'JSON file {path!r}: the JSON value starting on line '
                  f'{line}, column 5 is longer than 1,048,576 characters') +
        '.*MAX_ELEMENT_CHARS')
    assert peak < 8 * MIB


def test_one_large_element_is_decoded_in_linear_time(tmp_path, monkeypatch):
    # A 10 MB element read 4 KiB at a time: each attempt reads at least as
    # much again, so about log2(10 MB / 4 KiB) attempts, not 2500.
    doc = [{'id': 1, 'file_name': 'x' * (10 * 10**6)}, {'id': 2}]
    path = _write(tmp_path / 'objects.json', json.dumps(doc).encode())
    attempts, parsed = [], []
    raw_decode = json.JSONDecoder.raw_decode

    def counting(self, s, idx=0):
        attempts.append(idx)
        parsed.append(len(s) - idx)
        return raw_decode(self, s, idx)

    monkeypatch.setattr(json.JSONDecoder, 'raw_decode', counting)
    assert list(iter_json_array(path, chunk_bytes=4 * KIB)) == doc
    assert len(attempts) < 40
    assert sum(parsed) < 4 * osp.getsize(path)


def test_array_element_over_the_cap(tmp_path):
    path = _write(tmp_path / 'objects.json', b'[{"a": 1},\n\n  {"b": "',
                  b'y' * (3 * MIB), b'"}]')
    with pytest.raises(
            InvalidInputError,
            match=re.escape(f'{path!r}: the JSON value starting on line 3, '
                            'column 3 is longer than 1,048,576 characters')):
        list(
            iter_json_array(path, chunk_bytes=64 * KIB, max_element_chars=MIB))


def test_batched_elements_equal_json_loads(tmp_path):
    # Runs of elements are decoded at once; nested objects that start like
    # the elements, strings holding the separator, and arrays of arrays
    # must not fool the batching.
    elements = []
    for i in range(300):
        objects = [
            dict(id=j, name='}, {"id": ' * (i % 3)) for j in range(i % 4)
        ]
        text = '"}, {"id"' if i % 5 == 0 else 'plain'
        elements.append(dict(id=i, objects=objects, text=text))
    for doc in (elements, [[e, [e]] for e in elements[:50]]):
        text = json.dumps(doc)
        path = _write(tmp_path / 'a.json', text.encode())
        for chunk in (97, 4 * KIB, None):
            assert list(iter_json_array(path, chunk_bytes=chunk)) == doc
            assert load_json_file(
                path, chunk_bytes=chunk,
                max_element_chars=2 * KIB) == json.loads(text)


def test_json_reader_holds_one_chunk_of_text(tmp_path):
    # Many small elements: the text in memory is one read, not the file.
    images = [dict(id=i, file_name=f'{i:012d}.jpg') for i in range(50000)]
    path = _write(tmp_path / 'big.json', json.dumps(images).encode())
    longest = 0
    with open(path, 'rb') as f:
        stream = json_stream.JsonStream(f, chunk_bytes=64 * KIB)
        assert stream.peek() == '['
        for i, image in enumerate(stream.elements()):
            assert image == images[i]
            longest = max(longest, len(stream.buf))
    assert i == len(images) - 1
    assert longest < 2 * 64 * KIB < osp.getsize(path) // 10


# -- paths -----------------------------------------------------------------


def test_symlink_loop_is_not_reported_missing(tmp_path):
    loop = str(tmp_path / 'loop.json')
    os.symlink(loop, loop)
    with pytest.raises(InvalidInputError) as err:
        require_file(loop, 'COCO annotation file', 'layout')
    assert not isinstance(err.value, FileNotFoundError)
    assert re.search(
        re.escape(f'COCO annotation file {loop!r} is a symbolic link loop') +
        '.*fix the link.*\nExpected dataset layout', str(err.value))
    with pytest.raises(InvalidInputError, match='symbolic link loop'):
        require_dir(loop, 'COCO image directory', 'layout')


def test_broken_link_names_its_target(tmp_path):
    link = str(tmp_path / 'train.jsonl')
    os.symlink(str(tmp_path / 'gone.jsonl'), link)
    with pytest.raises(
            FileNotFoundError,
            match=re.escape(f'JSON Lines annotation file not found: {link!r} '
                            'is a symbolic link to ') + '.*gone.jsonl.*'
            r'broken link') as err:
        require_file(link, 'JSON Lines annotation file', 'layout')
    assert isinstance(err.value, InvalidInputError)


@pytest.mark.skipif(not hasattr(os, 'mkfifo'), reason='needs os.mkfifo')
def test_fifo_and_file_are_named(tmp_path):
    fifo = str(tmp_path / 'labels.csv')
    os.mkfifo(fifo)
    with pytest.raises(
            InvalidInputError,
            match=re.escape(f'label file {fifo!r} is a FIFO (named pipe)') +
            '.*not a regular file; point the dataset at the file itself'):
        require_file(fifo, 'label file', 'layout')
    with pytest.raises(
            InvalidInputError,
            match=re.escape(f'image directory {fifo!r} is a FIFO (named '
                            'pipe)') + '.*, not a directory'):
        require_dir(fifo, 'image directory', 'layout')
    plain = _write(tmp_path / 'images', b'')
    with pytest.raises(
            InvalidInputError,
            match=re.escape(f'image directory {plain!r} is a file, not a '
                            'directory')):
        require_dir(plain, 'image directory', 'layout')


def test_missing_path_keeps_its_message(tmp_path):
    path = str(tmp_path / 'nothing.json')
    with pytest.raises(
            FileNotFoundError,
            match=re.escape(f'COCO annotation file not found: {path!r}\n'
                            'Expected dataset layout')):
        require_file(path, 'COCO annotation file', 'layout')
    with pytest.raises(FileNotFoundError, match='not a folder'):
        require_file(
            osp.join(_write(tmp_path / 'f', b''), 'x.json'),
            'COCO annotation file', 'layout')


def test_readers_accept_streams_of_one_byte_reads():
    # The UTF-8 reader copes with reads that split the byte order mark and
    # the characters.
    data = '\ufeff{"a": ["\u00e9\U0001F600"]}'.encode()

    class OneByte(io.RawIOBase):

        def __init__(self):
            self.data = io.BytesIO(data)

        def readable(self):
            return True

        def read(self, size=-1):
            return self.data.read(1)

    stream = json_stream.JsonStream(OneByte(), chunk_bytes=4)
    assert stream.document() == {'a': ['\u00e9\U0001F600']}
