"""Fast float32 <-> text for DyNet's model files (see dynet/io.py for the format).

DyNet writes every value as C's "%+.8e " (9 significant digits, enough for a float32 to survive the
round trip), 16 bytes a value. Formatting and parsing that with printf/strtof costs about 1 us a
value; here the common case is done with double arithmetic on exact powers of ten, and every case
where that could differ from the correctly rounded result falls back to snprintf/strtof.
"""
cimport cython
from libc.math cimport fabs, rint
from libc.float cimport FLT_MIN
from libc.stdio cimport snprintf
from libc.stdlib cimport strtof, strtod, malloc, free
from libc.string cimport memmove, memchr, memcpy
from cpython.bytes cimport PyBytes_FromStringAndSize

cdef double POW10[23]
cdef int _k
for _k in range(23):
    POW10[_k] = float(f"1e{_k}")          # exact in double up to 1e22

# ---- formatting ---------------------------------------------------------------------------------

cdef double TWO_M149 = 2.0 ** -149       # the smallest denormal float32


cdef inline Py_ssize_t _fmt_slow(float v, char* out) noexcept nogil:
    # glibc's printf is correctly rounded (ties to even), as is the reference's iostream output.
    return snprintf(out, 32, "%+.8e ", <double>v)


cdef inline Py_ssize_t _fmt_denormal(unsigned int bits, char* out) noexcept nogil:
    # Built from the bits, not by converting the float: a process whose FPU treats denormals as
    # zero (the reference DyNet sets that mode when it is loaded) would print 0.
    cdef double d = <double>(bits & 0x7FFFFF) * TWO_M149
    return snprintf(out, 32, "%+.8e ", -d if bits >> 31 else d)


cdef char DIGIT_PAIRS[200]
for _k in range(100):
    DIGIT_PAIRS[2 * _k] = 48 + _k // 10
    DIGIT_PAIRS[2 * _k + 1] = 48 + _k % 10


cdef inline void _two(char* out, unsigned int k) noexcept nogil:
    out[0] = DIGIT_PAIRS[2 * k]
    out[1] = DIGIT_PAIRS[2 * k + 1]


cdef inline Py_ssize_t _fmt_one(float v, char* out) noexcept nogil:
    """Write v as "%+.8e " into out (at most 32 bytes); returns the number of bytes written."""
    cdef double d, scaled, frac
    cdef int E, p, i, e
    cdef unsigned int bits, digits, hi, lo
    memcpy(&bits, &v, 4)
    e = (bits >> 23) & 0xFF
    if e == 0xFF:
        return _fmt_slow(v, out)       # inf, nan
    if e == 0:
        if bits & 0x7FFFFFFF:
            return _fmt_denormal(bits, out)
        memcpy(out, b"+0.00000000e+00 ", 16)    # zero: common (gradients, biases)
        if bits >> 31:
            out[0] = c'-'
        return 16
    d = fabs(<double>v)
    E = ((e - 127) * 78913) >> 18      # floor(log10(2^(e-127))): log10(d) is E or E+1
    for i in range(3):  # no-cython-lint (a typed C loop counter)
        p = 8 - E
        if p > 44 or p < -22:
            return _fmt_slow(v, out)   # huge or tiny: powers of ten not exact in double
        if p < 0:
            scaled = d / POW10[-p]
        elif p <= 22:
            scaled = d * POW10[p]
        else:
            scaled = (d * POW10[22]) * POW10[p - 22]
        if scaled < 1e8:
            E -= 1
        elif scaled >= 1e9:
            E += 1
        else:
            break
    else:
        return _fmt_slow(v, out)
    digits = <unsigned int>scaled
    frac = scaled - <double>digits
    # `scaled` is within ~3e-7 of the exact product: near a tie the rounding must be decided exactly
    if fabs(frac - 0.5) < 1e-5:
        return _fmt_slow(v, out)
    if frac > 0.5:
        digits += 1
    if digits >= 1000000000:
        digits = 100000000
        E += 1
    out[0] = c'-' if bits >> 31 else c'+'
    hi = digits // 10000               # 5 leading digits, then 4
    lo = digits - hi * 10000
    _two(out + 9, lo % 100)
    _two(out + 7, lo // 100)
    _two(out + 5, hi % 100)
    hi //= 100
    _two(out + 3, hi % 100)
    out[1] = <char>(48 + hi // 100)
    out[2] = c'.'
    out[11] = c'e'
    if E < 0:
        out[12] = c'-'
        E = -E
    else:
        out[12] = c'+'
    _two(out + 13, E)
    out[15] = c' '
    return 16


@cython.boundscheck(False)
@cython.wraparound(False)
def format_floats(const float[::1] values, float scale=1.0):
    """The values (each times `scale`, in float32 as DyNet does) as DyNet's text: "%+.8e " each."""
    cdef Py_ssize_t n = values.shape[0], i, pos = 0
    cdef char* buf = <char*>malloc(n * 32 + 1)
    if buf == NULL:
        raise MemoryError()
    try:
        with nogil:
            if scale == 1.0:
                for i in range(n):
                    pos += _fmt_one(values[i], buf + pos)
            else:
                for i in range(n):
                    pos += _fmt_one(values[i] * scale, buf + pos)
        return PyBytes_FromStringAndSize(buf, pos)
    finally:
        free(buf)


# ---- parsing ------------------------------------------------------------------------------------

cdef inline bint _isdigit(char c) noexcept nogil:
    return c'0' <= c <= c'9'


cdef inline bint _parse_fast(const char* s, Py_ssize_t n, float* out) noexcept nogil:
    """The exact "%+.8e" shape ([+-]d.dddddddde[+-]dd), with an exponent whose power of ten is
    exact in double: one correctly rounded double operation, then a cast to float32."""
    cdef long long digits
    cdef int i, E, p
    cdef double v
    if n != 15 or (s[0] != c'+' and s[0] != c'-') or s[2] != c'.' or s[11] != c'e' \
            or (s[12] != c'+' and s[12] != c'-'):
        return False
    if not _isdigit(s[1]) or not _isdigit(s[13]) or not _isdigit(s[14]):
        return False
    digits = s[1] - c'0'
    for i in range(3, 11):
        if not _isdigit(s[i]):
            return False
        digits = digits * 10 + (s[i] - c'0')
    E = (s[13] - c'0') * 10 + (s[14] - c'0')
    if s[12] == c'-':
        E = -E
    p = E - 8
    if p > 22 or p < -22:
        return False
    v = <double>digits * POW10[p] if p >= 0 else <double>digits / POW10[-p]
    out[0] = <float>(-v if s[0] == c'-' else v)
    return True


cdef inline bint _parse_slow(const char* s, Py_ssize_t n, float* out) noexcept nogil:
    """Any other spelling of a number that C's strtof reads whole (1.5, -3, 1e-30, inf, nan)."""
    cdef char tmp[64]
    cdef char* end
    if n >= 64 or n == 0:
        return False
    cdef float f
    cdef double d
    cdef unsigned int bits
    memmove(tmp, s, n)
    tmp[n] = 0
    f = strtof(tmp, &end)
    if end != tmp + n:
        return False
    if fabs(f) < FLT_MIN:
        # zero or a denormal: made from the bits, as a flush-to-zero FPU mode would give 0
        d = strtod(tmp, NULL)
        if d != 0.0 and fabs(d) < FLT_MIN:
            bits = <unsigned int>rint(fabs(d) / TWO_M149)     # ties to even, as strtof
            if d < 0:
                bits |= 0x80000000u
            memcpy(&f, &bits, 4)
    out[0] = f
    return True


cdef inline bint _is_space(char c) noexcept nogil:
    return c == c' ' or c == c'\t' or c == c'\r' or c == c'\v' or c == c'\f'


# status codes of TextReader.read_floats
OK, TOO_MANY, BAD_TOKEN, NO_EOL = 0, 1, 2, 3
DEF MAX_TOKEN = 63


cdef class TextReader:
    """Reads a model file in chunks: header lines as bytes, value lines parsed straight into float32
    arrays. Counts lines, so errors can say where they are."""
    cdef object f
    cdef object chunk            # bytearray that the file is read into
    cdef char* data
    cdef Py_ssize_t start, end, cap
    cdef bint eof
    cdef readonly Py_ssize_t line       # lines fully consumed so far
    cdef readonly bytes bad_token       # the offending token after BAD_TOKEN
    cdef readonly Py_ssize_t total_read

    def __init__(self, f, Py_ssize_t chunk_size=1 << 22):
        self.f = f
        self.cap = max(chunk_size, 4096)
        self.chunk = bytearray(self.cap)
        self.data = <char*>(<bytearray>self.chunk)
        self.start = self.end = 0
        self.eof = False
        self.line = 0
        self.total_read = 0

    cdef bint _fill(self) except -1:
        """Keep the unread bytes, read more after them; False at the end of the file."""
        cdef Py_ssize_t got
        if self.eof:
            return False
        if self.start > 0:
            memmove(self.data, self.data + self.start, self.end - self.start)
            self.end -= self.start
            self.start = 0
        if self.end == self.cap:
            return True
        got = self.f.readinto(memoryview(self.chunk)[self.end:])
        if not got:
            self.eof = True
            return False
        self.end += got
        self.total_read += got
        return True

    def at_eof(self):
        """True when nothing is left to read."""
        if self.start < self.end:
            return False
        return not self._fill()

    def read_line(self, Py_ssize_t maxlen):
        """The next line without its end of line, or None at the end of the file. Returns
        (line, terminated); a line longer than maxlen is returned cut at maxlen bytes, unterminated,
        with the rest left unread."""
        cdef const char* nl
        cdef Py_ssize_t scanned = 0, length
        maxlen = min(maxlen, self.cap - 1)      # a longer line could never be whole in the buffer
        while True:
            nl = <const char*>memchr(self.data + self.start + scanned, c'\n',
                                     self.end - self.start - scanned)
            if nl != NULL:
                length = nl - (self.data + self.start)
                if length > maxlen:
                    break
                out = PyBytes_FromStringAndSize(self.data + self.start, length)
                self.start += length + 1
                self.line += 1
                return out, True
            scanned = self.end - self.start
            if scanned > maxlen:
                break
            if not self._fill():
                if self.end == self.start:
                    return None
                out = PyBytes_FromStringAndSize(self.data + self.start, self.end - self.start)
                self.start = self.end
                return out, False
        return PyBytes_FromStringAndSize(self.data + self.start, maxlen), False

    def skip_line(self):
        """Skip to after the next end of line; False if the file ended first."""
        cdef const char* nl
        while True:
            nl = <const char*>memchr(self.data + self.start, c'\n', self.end - self.start)
            if nl != NULL:
                self.start = nl - self.data + 1
                self.line += 1
                return True
            self.start = self.end
            if not self._fill():
                return False

    @cython.boundscheck(False)
    @cython.wraparound(False)
    def read_floats(self, float[::1] out, Py_ssize_t offset, Py_ssize_t maxcount):
        """Parse the numbers of one line into out[offset:offset+maxcount]. Returns (count, status):
        OK (the line ended), TOO_MANY (a further number was there), BAD_TOKEN (self.bad_token does
        not parse; count numbers before it), NO_EOL (the file ended without an end of line: a
        model file was cut short, a plain file of numbers just ended)."""
        cdef Py_ssize_t count = 0, tok, p
        cdef char c
        cdef float* dst
        if offset < 0 or maxcount < 0 or offset + maxcount > out.shape[0]:
            raise IndexError(f"read_floats: {offset}+{maxcount} outside an array of {out.shape[0]}")
        dst = &out[offset] if out.shape[0] > 0 else NULL
        while True:
            # skip blanks up to a token or the end of the line
            while True:
                while self.start < self.end and _is_space(self.data[self.start]):
                    self.start += 1
                if self.start < self.end:
                    break
                if not self._fill():
                    return count, NO_EOL
            c = self.data[self.start]
            if c == c'\n':
                self.start += 1
                self.line += 1
                return count, OK
            # a token: make sure it is whole in the buffer (or the file ends inside it)
            while True:
                p = self.start
                while p < self.end and p - self.start <= MAX_TOKEN:
                    c = self.data[p]
                    if c == c'\n' or _is_space(c):
                        break
                    p += 1
                if p < self.end or p - self.start > MAX_TOKEN:
                    break
                tok = p - self.start
                if not self._fill():         # (it may have moved the unread bytes)
                    p = self.start + tok
                    break
            tok = p - self.start
            if count == maxcount:
                return count, TOO_MANY
            if tok > MAX_TOKEN or not (_parse_fast(self.data + self.start, tok, dst + count) or
                                       _parse_slow(self.data + self.start, tok, dst + count)):
                self.bad_token = PyBytes_FromStringAndSize(self.data + self.start, min(tok, 40))
                return count, BAD_TOKEN
            count += 1
            self.start = p
            if p == self.end and self.eof:
                return count, NO_EOL      # the last number of a file without a final end of line
