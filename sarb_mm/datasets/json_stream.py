"""Read a JSON file piece by piece, with a bounded text buffer.

Annotation files come from other people. ``json.loads`` of a whole file
holds the complete text and its decoded objects at once, and one broken
element (a string that never ends, a value padded to gigabytes) is found
only after everything has been read. :class:`JsonStream` reads the file in
chunks and decodes the elements of the top-level array (or of the arrays
that are values of the top-level object, such as COCO's ``"images"`` and
``"annotations"``) with the standard library's C decoder, each on its own or
a run of whole elements at once, so the text in memory is one chunk plus
one element, and an element longer than :data:`MAX_ELEMENT_CHARS` is refused
with the line where it starts.

The decoded values are those of ``json.loads``: the same decoder decodes
every element, only the outer brackets and separators are read here.
"""
import codecs
import json
import re
from typing import Any, BinaryIO, Callable, Iterator, Optional, Tuple

#: Bytes read from the file at a time.
CHUNK_BYTES = 4 * 1024**2
#: The longest element, in characters, decoded in one piece: an element of
#: the top-level array, a value of the top-level object, or an element of an
#: array that is such a value. Real elements (an image entry, an annotation,
#: a category) are a few KB; the text buffer holds one chunk plus at most
#: this much. Raise it (``sarb_mm.datasets.json_stream.MAX_ELEMENT_CHARS``,
#: or the ``max_element_chars`` argument of the readers) for a file with
#: genuinely larger elements.
MAX_ELEMENT_CHARS = 64 * 1024**2

_WHITESPACE = re.compile(r'[ \t\n\r]*')
# The C scanner reports an error caused by the end of the buffer (a cut
# "\uXXXX" escape, "-Infinity", "true" or number) at most this many
# characters before that end, and a number that ends this close to it may
# go on; an unterminated string is reported where the string starts, so
# that message is checked by name.
_LOOKAHEAD = 16


class Utf8Error(ValueError):
    """Bytes that are not UTF-8, where they are in the file.

    Attributes:
        reason (str): The codec's reason, e.g. ``'invalid start byte'``.
        offset (int): Byte offset of the first bad byte in the file.
        byte (bytes): That byte.
        text (str): The text decoded in the failing read before it (to
            count the lines up to it).
    """

    def __init__(self, reason: str, offset: int, byte: bytes,
                 text: str) -> None:
        super().__init__(f'{reason} (byte {offset} is {byte!r})')
        self.reason = reason
        self.offset = offset
        self.byte = byte
        self.text = text


class Utf8Reader:
    """A binary file decoded as UTF-8 piece by piece.

    A byte order mark at the start is dropped (also when the first reads
    are shorter than it). An invalid byte raises :class:`Utf8Error` with its
    offset in the file, which a decoding text file cannot give.

    Args:
        f (BinaryIO): The file, opened in binary mode.
        progress (callable, optional): Called with the number of bytes read
            after every read.
    """

    def __init__(self,
                 f: BinaryIO,
                 progress: Optional[Callable[[int], None]] = None) -> None:
        self._f, self._progress = f, progress
        self._decoder = codecs.getincrementaldecoder('utf-8')()
        self._fed = 0  # bytes given to the decoder, with the BOM
        self._first = True
        #: Whether the end of the file was reached.
        self.eof = False

    def _read_bytes(self, size: int) -> bytes:
        data = self._f.read(size)
        if self._progress is not None and data:
            self._progress(len(data))
        return data

    def read(self, size: int) -> str:
        """The text of up to ``size`` more bytes ('' at the end, and also
        when the bytes end inside a character)."""
        if self.eof:
            return ''
        data = self._read_bytes(size)
        eof = not data
        if self._first:
            self._first = False
            bom = codecs.BOM_UTF8
            while data and len(data) < len(bom) and bom.startswith(data):
                more = self._read_bytes(size)
                if not more:
                    break
                data += more
            if data.startswith(bom):
                data = data[len(bom):]
                self._fed = len(bom)
        pending = self._decoder.getstate()[0]
        try:
            text = self._decoder.decode(data, final=eof)
        except UnicodeDecodeError as err:
            # err.object is the decoder's pending bytes followed by data.
            raw, start = err.object, err.start
            before = raw[:start].decode('utf-8', 'replace')
            raise Utf8Error(err.reason, self._fed - len(pending) + start,
                            raw[start:start + 1], before) from None
        self._fed += len(data)
        self.eof = eof
        return text


class JsonStreamError(ValueError):
    """A problem of the JSON text, where it is in the file.

    Attributes:
        kind (str): ``'syntax'`` (invalid JSON), ``'too_long'`` (an element
            over the character cap) or ``'encoding'`` (not UTF-8).
        msg (str): For ``'syntax'``, the decoder's message (e.g.
            ``"Expecting ',' delimiter"``).
        lineno (int): 1-based line of the problem (of the element's start
            for ``'too_long'``).
        colno (int): 1-based column (characters) on that line.
        context (str): ``'element'`` for an error inside a decoded element,
            ``'array'`` / ``'object'`` / ``'document'`` for the brackets and
            separators read by :class:`JsonStream`.
        at_eof (bool): Whether the file ended there.
        offset (int): For ``'encoding'``, the byte offset in the file.
        byte (bytes): For ``'encoding'``, the offending byte.
        limit (int): For ``'too_long'``, the cap.
    """

    def __init__(self, kind: str, msg: str, lineno: int, colno: int,
                 **info) -> None:
        super().__init__(f'{msg} at line {lineno}, column {colno}')
        self.kind, self.msg = kind, msg
        self.lineno, self.colno = lineno, colno
        self.context = info.get('context', 'element')
        self.at_eof = info.get('at_eof', False)
        self.offset = info.get('offset')
        self.byte = info.get('byte')
        self.limit = info.get('limit')

    def too_long_text(self) -> str:
        """The explanation of a ``'too_long'`` error, for messages."""
        return (f'the JSON value starting on line {self.lineno}, column '
                f'{self.colno} is longer than {self.limit:,} characters, the '
                'limit of one element (or a string in it is never closed). '
                'Real annotation elements are a few KB, so the file is '
                'probably corrupt; if the element is genuine, raise '
                'sarb_mm.datasets.json_stream.MAX_ELEMENT_CHARS')


class JsonStream:
    """A JSON document read from a binary file piece by piece.

    The reading position starts at the beginning of the file; :meth:`peek`,
    :meth:`value`, :meth:`elements` and :meth:`document` move it on.

    Args:
        f (BinaryIO): The file, opened in binary mode. UTF-8, with or
            without a byte order mark.
        chunk_bytes (int, optional): Bytes per read. Defaults to
            :data:`CHUNK_BYTES`.
        max_element_chars (int, optional): Longest element decoded in one
            piece. Defaults to :data:`MAX_ELEMENT_CHARS`. (Both defaults are
            read when the stream is made.)
        object_pairs_hook (callable, optional): As for ``json.loads``; also
            applied to the top-level object.
        progress (callable, optional): Called with the number of bytes read
            after every read.
    """

    def __init__(self,
                 f: BinaryIO,
                 chunk_bytes: Optional[int] = None,
                 max_element_chars: Optional[int] = None,
                 object_pairs_hook: Optional[Callable] = None,
                 progress: Optional[Callable[[int], None]] = None) -> None:
        self._chunk = max(
            1, int(CHUNK_BYTES if chunk_bytes is None else chunk_bytes))
        if max_element_chars is None:
            max_element_chars = MAX_ELEMENT_CHARS
        self._cap = int(max_element_chars)
        self._hook = object_pairs_hook or dict
        self._scan = json.JSONDecoder(
            object_pairs_hook=object_pairs_hook).raw_decode
        self._reader = Utf8Reader(f, progress)
        self.buf = ''  # decoded text not yet dropped
        self.pos = 0  # next unread character of buf
        self.eof = False
        #: Whether an element is being decoded (an error from the object
        #: hook then concerns the element at :attr:`pos`).
        self.decoding = False
        # Lines and last-line characters of the text dropped from buf.
        self._lines_before = 0
        self._cols_before = 0
        self._dropped = 0  # characters dropped from buf
        self._reads = 0
        # A batch failed up to this character (see _batch).
        self._no_batch_before = -1

    # -- reading -----------------------------------------------------------

    def _read(self, size: int) -> bool:
        """Append up to ``size`` more bytes of text; False at the end."""
        if self.eof:
            return False
        try:
            text = self._reader.read(size)
        except Utf8Error as err:
            line = (self.location(len(self.buf))[0] + err.text.count('\n'))
            raise JsonStreamError(
                'encoding',
                err.reason,
                line,
                0,
                offset=err.offset,
                byte=err.byte) from None
        # Drop what is read already; keep the element being decoded.
        if self.pos:
            self._drop(self.pos)
            self.buf = self.buf[self.pos:] + text
            self.pos = 0
        else:
            self.buf += text
        self.eof = self._reader.eof
        self._reads += 1
        return True

    def _drop(self, count: int) -> None:
        """Count the lines of the first ``count`` characters of buf, which
        are about to be dropped (for the line numbers of messages)."""
        self._dropped += count
        newlines = self.buf.count('\n', 0, count)
        if newlines:
            self._lines_before += newlines
            self._cols_before = count - self.buf.rfind('\n', 0, count) - 1
        else:
            self._cols_before += count

    def _more(self) -> None:
        """Read more of the element starting at :attr:`pos`.

        The element is decoded again from its start after each read, so
        each read is at least as large as what is buffered: the text
        buffered doubles, and the total decoding work stays linear in the
        element's length (a fixed read size would make it quadratic).
        """
        span = len(self.buf) - self.pos
        if span > self._cap:
            raise self._too_long()
        self._read(max(self._chunk, min(span, self._cap + 1 - span)))

    def _too_long(self) -> JsonStreamError:
        line, col = self.location(self.pos)
        return JsonStreamError(
            'too_long', 'element too long', line, col, limit=self._cap)

    # -- positions ---------------------------------------------------------

    def location(self, pos: Optional[int] = None) -> Tuple[int, int]:
        """1-based (line, column) of ``pos`` in :attr:`buf` (default: the
        reading position), counted as ``json.loads`` counts them."""
        pos = self.pos if pos is None else pos
        newlines = self.buf.count('\n', 0, pos)
        if newlines:
            return (self._lines_before + newlines + 1,
                    pos - self.buf.rfind('\n', 0, pos))
        return self._lines_before + 1, self._cols_before + pos + 1

    def error(self, msg: str, context: str) -> JsonStreamError:
        """A syntax error at the reading position."""
        line, col = self.location()
        return JsonStreamError(
            'syntax',
            msg,
            line,
            col,
            context=context,
            at_eof=self.eof and self.pos >= len(self.buf))

    # -- grammar -----------------------------------------------------------

    def peek(self) -> str:
        """Skip white space; the next character, or '' at the end."""
        buf, pos = self.buf, self.pos
        if pos < len(buf) and buf[pos] not in ' \t\n\r':
            return buf[pos]
        while True:
            self.pos = _WHITESPACE.match(self.buf, self.pos).end()
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._read(self._chunk):
                return ''

    def value(self) -> Any:
        """Decode the value at the reading position (after :meth:`peek`),
        reading on while it is cut by the end of the buffer."""
        self.decoding = True
        while True:
            try:
                value, end = self._scan(self.buf, self.pos)
            except json.JSONDecodeError as err:
                cut = (
                    err.msg.startswith('Unterminated string')
                    or err.pos >= len(self.buf) - _LOOKAHEAD)
                if self.eof or not cut:
                    line, col = self.location(err.pos)
                    raise JsonStreamError(
                        'syntax',
                        err.msg,
                        line,
                        col,
                        at_eof=self.eof and err.pos >= len(self.buf)) from None
                self._more()
                continue
            except ValueError as err:
                # E.g. an integer of more digits than int() converts.
                line, col = self.location()
                raise JsonStreamError('syntax', str(err), line, col) from None
            # A number near the end of the buffer may go on in the next
            # read ("1.5e" of "1.5e10" decodes as 1.5); the other values
            # end with a closing character.
            if self.eof or (end < len(self.buf) and
                            (end <= len(self.buf) - _LOOKAHEAD
                             or not isinstance(value, (int, float)))):
                break
            self._more()
        if end - self.pos > self._cap:
            # Refused however the reads fell, so that the limit does not
            # depend on the chunk size.
            raise self._too_long()
        self.decoding = False
        self.pos = end
        return value

    def elements(self) -> Iterator:
        """Yield the elements of the array whose ``[`` is the next
        character (after :meth:`peek`), each decoded on its own (or in
        batches, see :meth:`_batch`)."""
        self.pos += 1
        char = self.peek()
        if char == ']':
            self.pos += 1
            return
        boundary = None
        while True:
            if not char:
                raise self.error('Expecting value', 'array')
            batch = self._batch(boundary) if boundary else None
            if batch is not None:
                yield from batch
            else:
                yield self.value()
            end, reads = self.pos, self._reads
            char = self.peek()
            if char == ',':
                self.pos += 1
                char = self.peek()
                if boundary is None and reads == self._reads:
                    boundary = self._boundary(end)
            elif char == ']':
                self.pos += 1
                return
            else:
                raise self.error("Expecting ',' delimiter", 'array')

    def _boundary(self, end: int) -> Optional[str]:
        """The text between two elements of an array of objects (or of
        arrays): the first one's closing bracket at ``end - 1``, the
        separator, and the next one's start up to its first key, e.g.
        ``'}, {"id"'``; None for other elements."""
        buf, start = self.buf, self.pos
        if buf[end - 1] == ']' and buf.startswith('[', start):
            return buf[end - 1:start + 1]
        if buf[end - 1] == '}' and buf.startswith('{"', start):
            quote = buf.find('"', start + 2, start + 64)
            if quote > 0 and buf[quote - 1] != '\\':
                return buf[end - 1:quote + 1]
        return None

    def _batch(self, boundary: str) -> Optional[list]:
        """Decode the run of elements from the reading position to the last
        ``boundary`` in the buffer with one call of the decoder, or return
        None.

        The C decoder shares the strings of repeated keys within one call
        only: element by element, every COCO annotation would hold its own
        copies of "id", "image_id", ... (half as much memory again as
        ``json.loads`` needs) and decode more slowly. The run is decoded as
        ``'[' + run + ']'``; that is valid JSON exactly when the run ends
        after a complete element (the bracket closing an element, not a
        nested value or a string) or the array ends inside the run, so a
        successful decode gives the elements themselves. Otherwise (also
        for any error, which is then found again element by element, with
        its line), the elements up to the end of the run are decoded one by
        one. A run is at most the element cap long.
        """
        buf, pos = self.buf, self.pos
        if self._dropped + pos <= self._no_batch_before:
            return None
        cut = buf.rfind(boundary, pos, min(len(buf), pos + self._cap))
        if cut <= pos:
            return None
        text = '[' + buf[pos:cut + 1] + ']'
        try:
            batch, end = self._scan(text)
        except Exception:  # any error is found again element by element
            self._no_batch_before = self._dropped + cut
            return None
        # The array may end inside the run; its "]" then ends the batch.
        self.pos = pos + end - 2
        return batch

    def document(self) -> Any:
        """Decode the whole document (from the start of the file).

        The top-level array's elements, the top-level object's values and
        the elements of arrays that are such values are decoded one by
        one; the result equals ``json.loads`` of the file.
        """
        char = self.peek()
        if char == '[':
            result = list(self.elements())
        elif char == '{':
            result = self._object()
        else:
            result = self.value()
        if self.peek():
            raise self.error('Extra data', 'document')
        return result

    def _object(self) -> Any:
        """The top-level object, its array values element by element."""
        self.pos += 1
        pairs = []
        char = self.peek()
        if char == '}':
            self.pos += 1
            return self._hook(pairs)
        while True:
            if char != '"':
                raise self.error(
                    'Expecting property name enclosed in double quotes',
                    'object')
            key = self.value()
            if self.peek() != ':':
                raise self.error("Expecting ':' delimiter", 'object')
            self.pos += 1
            if self.peek() == '[':
                value = list(self.elements())
            else:
                value = self.value()
            pairs.append((key, value))
            char = self.peek()
            if char == ',':
                self.pos += 1
                char = self.peek()
            elif char == '}':
                self.pos += 1
                return self._hook(pairs)
            else:
                raise self.error("Expecting ',' delimiter", 'object')
