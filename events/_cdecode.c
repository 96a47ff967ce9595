/* Optional C accelerator of the log reader (docs/log-format.md, "How the reader decodes").
 *
 * decode(buf, pos, expected, max_record, dec, out, budget) decodes consecutive E frames
 * at buf[pos:] ONE AT A TIME into `out` and stops, without consuming or changing
 * anything for that frame, at the first frame it is not sure of: not an E frame,
 * incomplete, a malformed or too long length, a checksum mismatch, a body that is not
 * exactly one msgpack object of the kinds handled here, a new name, an extension
 * anywhere but as the deflated payload (element 6 of 7), a non-str map key, nesting
 * deeper than WIRE_DEPTH, a wrong payload shape... The caller hands that frame to the
 * reference path (logfile._decode_slow), which decodes it or names the damage. So
 * damage offsets and causes stay the reference path's.
 *
 * The one exception: a deflated payload (ext 1). Inflating advances the log's deflate
 * stream, so it is done only after the whole body parsed and checked, by the Python
 * Inflater (dec.stream.chunk); from then on this frame is decided here: a CodecError
 * is returned as the reference's cause "malformed record (...)", and an inflated
 * payload the C decoder is unsure of goes to dec.payload_from_raw (the reference).
 *
 * Returns (pos, expected, cause): cause None (stopped at pos: the caller decides),
 * a damage cause (str) for the frame at pos, or the INFLATED sentinel (the inflated
 * bytes budget ran out after the record before pos).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_CONTAINER (1u << 20) /* codec.MAX_CONTAINER: msgpack max_array_len/max_map_len */
/* Deepest container nesting decoded here (the wire array is level 1). A payload's depth
 * is at most its wire level, so 24 stays clear of codec.MAX_DEPTH (32): nothing this
 * path accepts can be "nesting deeper than 32"; deeper bodies go to the reference. */
#define WIRE_DEPTH 24
#define PACKED_MIN 8 /* codec._PACKED_MIN: an ext 3 list has at least 8 ints */

enum { UNSURE = 0, OK = 1, ERR = -1 };

/* configure()d once by logfile.py */
static PyObject *wire_fields; /* dict: type name -> tuple of field names */
static PyObject *codec_error; /* codec.CodecError */
static PyObject *inflated_tag; /* batch.INFLATED, returned by identity */
static PyObject *s_names, *s_step, *s_time, *s_stream, *s_inflated, *s_chunk, *s_from_raw;

/* ---- CRC-32 (IEEE 802.3, as zlib.crc32), slicing by 4 ---------------------------------- */

static uint32_t crc_tab[4][256];

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_tab[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 4; t++)
            crc_tab[t][i] = (crc_tab[t - 1][i] >> 8) ^ crc_tab[0][crc_tab[t - 1][i] & 0xFF];
}

/* crc32(data, crc) with zlib's convention (pre- and post-inverted) */
static uint32_t crc32_update(uint32_t crc, const unsigned char *p, size_t n)
{
    crc = ~crc;
    while (n >= 4) {
        crc ^= (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        crc = crc_tab[3][crc & 0xFF] ^ crc_tab[2][(crc >> 8) & 0xFF]
            ^ crc_tab[1][(crc >> 16) & 0xFF] ^ crc_tab[0][crc >> 24];
        p += 4;
        n -= 4;
    }
    while (n--)
        crc = crc_tab[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

static PyObject *py_crc32(PyObject *self, PyObject *args)
{
    Py_buffer b;
    unsigned int crc = 0;
    if (!PyArg_ParseTuple(args, "y*|I", &b, &crc))
        return NULL;
    uint32_t r = crc32_update(crc, b.buf, (size_t)b.len);
    PyBuffer_Release(&b);
    return PyLong_FromUnsignedLong(r);
}

/* ---- msgpack ------------------------------------------------------------------------- */

typedef struct {
    const unsigned char *p, *end;
} Cur;

static uint64_t be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Take n bytes (a length or payload) if they are there. */
static const unsigned char *take(Cur *c, uint64_t n)
{
    if ((uint64_t)(c->end - c->p) < n)
        return NULL;
    const unsigned char *q = c->p;
    c->p += n;
    return q;
}

/* An int (not a bool, float, ...): *neg says whether it is negative (then *v is its
 * two's complement). UNSURE if the next object is not an int. */
static int read_int(Cur *c, uint64_t *v, int *neg)
{
    const unsigned char *q;
    if (c->p >= c->end)
        return UNSURE;
    unsigned char b = *c->p++;
    *neg = 0;
    if (b < 0x80) {
        *v = b;
        return OK;
    }
    if (b >= 0xE0) {
        *v = (uint64_t)(int64_t)(int8_t)b;
        *neg = 1;
        return OK;
    }
    if (b >= 0xCC && b <= 0xCF) { /* uint 8/16/32/64 */
        int n = 1 << (b - 0xCC);
        if (!(q = take(c, n)))
            return UNSURE;
        *v = be(q, n);
        return OK;
    }
    if (b >= 0xD0 && b <= 0xD3) { /* int 8/16/32/64 */
        int n = 1 << (b - 0xD0);
        if (!(q = take(c, n)))
            return UNSURE;
        uint64_t u = be(q, n);
        int64_t s;
        if (n == 1) s = (int8_t)u;
        else if (n == 2) s = (int16_t)u;
        else if (n == 4) s = (int32_t)u;
        else s = (int64_t)u;
        *v = (uint64_t)s;
        *neg = s < 0;
        return OK;
    }
    return UNSURE;
}

/* Ext header at c->p: its code and data (UNSURE if the next object is not an ext). */
static int read_ext(Cur *c, int *code, const unsigned char **data, uint64_t *len)
{
    const unsigned char *q;
    if (c->p >= c->end)
        return UNSURE;
    unsigned char b = *c->p;
    uint64_t n;
    if (b >= 0xD4 && b <= 0xD8) { /* fixext 1/2/4/8/16 */
        c->p++;
        n = 1u << (b - 0xD4);
    } else if (b >= 0xC7 && b <= 0xC9) { /* ext 8/16/32 */
        c->p++;
        int w = 1 << (b - 0xC7);
        if (!(q = take(c, w)))
            return UNSURE;
        n = be(q, w);
    } else {
        return UNSURE;
    }
    if (!(q = take(c, 1)))
        return UNSURE;
    *code = (int8_t)q[0];
    if (!(*data = take(c, n)))
        return UNSURE;
    *len = n;
    return OK;
}

static int is_ext_byte(unsigned char b)
{
    return (b >= 0xD4 && b <= 0xD8) || (b >= 0xC7 && b <= 0xC9);
}

/* Length of a str (UNSURE if the next object is not a str). */
static int read_str(Cur *c, const unsigned char **s, uint64_t *len)
{
    const unsigned char *q;
    if (c->p >= c->end)
        return UNSURE;
    unsigned char b = *c->p++;
    uint64_t n;
    if (b >= 0xA0 && b <= 0xBF) {
        n = b & 0x1F;
    } else if (b >= 0xD9 && b <= 0xDB) {
        int w = 1 << (b - 0xD9);
        if (!(q = take(c, w)))
            return UNSURE;
        n = be(q, w);
    } else {
        return UNSURE;
    }
    if (!(*s = take(c, n)))
        return UNSURE;
    *len = n;
    return OK;
}

/* A str object from UTF-8 as msgpack decodes it (strict); UNSURE on bad UTF-8. */
static int make_str(const unsigned char *s, uint64_t n, PyObject **res)
{
    PyObject *o = PyUnicode_DecodeUTF8((const char *)s, (Py_ssize_t)n, "strict");
    if (!o) {
        if (PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
            PyErr_Clear();
            return UNSURE;
        }
        return ERR;
    }
    *res = o;
    return OK;
}

/* Map keys repeat from record to record: short ASCII keys are kept in a small
 * direct-mapped cache and shared (a str is immutable; msgpack interns its keys for the
 * same reason). Saves decoding, allocating and hashing each key again. */
#define KEY_CACHE 512
#define KEY_MAX 32
static PyObject *key_cache[KEY_CACHE];

static int key_str(const unsigned char *s, uint64_t n, PyObject **res)
{
    if (n == 0 || n > KEY_MAX)
        return make_str(s, n, res);
    uint32_t h = (uint32_t)n;
    for (uint64_t i = 0; i < n; i++)
        h = h * 31 + s[i];
    PyObject **slot = &key_cache[(h ^ (h >> 9)) % KEY_CACHE];
    PyObject *k = *slot;
    if (k && (uint64_t)PyUnicode_GET_LENGTH(k) == n && memcmp(PyUnicode_DATA(k), s, n) == 0) {
        *res = Py_NewRef(k);
        return OK;
    }
    int r = make_str(s, n, res);
    if (r == OK && PyUnicode_IS_ASCII(*res)) /* then its data are the n bytes */
        Py_XSETREF(*slot, Py_NewRef(*res));
    return r;
}

/* An array header (fix/16/32): its length (UNSURE if the next object is not an array). */
static int read_array_len(Cur *c, uint64_t *n)
{
    const unsigned char *q;
    if (c->p >= c->end)
        return UNSURE;
    unsigned char b = *c->p++;
    if (b >= 0x90 && b <= 0x9F) {
        *n = b & 0x0F;
    } else if (b == 0xDC || b == 0xDD) {
        int w = b == 0xDC ? 2 : 4;
        if (!(q = take(c, w)))
            return UNSURE;
        *n = be(q, w);
    } else {
        return UNSURE;
    }
    return OK;
}

static int read_obj(Cur *c, int depth, int inner, PyObject **res);

/* ext 3 of an inflated payload: a list of >= 8 ints, their running sum mod 2**64
 * (codec._inner_hook). UNSURE for anything else. */
static int u64_list(const unsigned char *d, uint64_t len, PyObject **res)
{
    Cur c = {d, d + len};
    uint64_t n;
    if (read_array_len(&c, &n) != OK)
        return UNSURE;
    if (n < PACKED_MIN || n > MAX_CONTAINER || n > (uint64_t)(c.end - c.p))
        return UNSURE;
    PyObject *list = PyList_New((Py_ssize_t)n);
    if (!list)
        return ERR;
    uint64_t sum = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t v;
        int neg;
        if (read_int(&c, &v, &neg) != OK) {
            Py_DECREF(list);
            return UNSURE;
        }
        sum += v; /* wraps mod 2**64 like `accumulate` then `& _MASK` */
        PyObject *o = PyLong_FromUnsignedLongLong(sum);
        if (!o) {
            Py_DECREF(list);
            return ERR;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, o);
    }
    if (c.p != c.end) { /* msgpack would raise ExtraData */
        Py_DECREF(list);
        return UNSURE;
    }
    *res = list;
    return OK;
}

/* A map's items (n of them) into a new dict; keys must be str. */
static int read_map(Cur *c, uint64_t n, int depth, int inner, PyObject **res)
{
    if (depth > WIRE_DEPTH || n > MAX_CONTAINER || n > (uint64_t)(c->end - c->p) / 2)
        return UNSURE;
    PyObject *d = PyDict_New();
    if (!d)
        return ERR;
    for (uint64_t i = 0; i < n; i++) {
        const unsigned char *s;
        uint64_t len;
        PyObject *k, *v;
        int r = read_str(c, &s, &len);
        if (r == OK)
            r = key_str(s, len, &k);
        if (r != OK) {
            Py_DECREF(d);
            return r;
        }
        r = read_obj(c, depth + 1, inner, &v);
        if (r != OK) {
            Py_DECREF(k);
            Py_DECREF(d);
            return r;
        }
        r = PyDict_SetItem(d, k, v); /* a repeated key: the last value wins, as msgpack */
        Py_DECREF(k);
        Py_DECREF(v);
        if (r < 0) {
            Py_DECREF(d);
            return ERR;
        }
    }
    *res = d;
    return OK;
}

static int read_array(Cur *c, uint64_t n, int depth, int inner, PyObject **res)
{
    if (depth > WIRE_DEPTH || n > MAX_CONTAINER || n > (uint64_t)(c->end - c->p))
        return UNSURE;
    PyObject *list = PyList_New((Py_ssize_t)n);
    if (!list)
        return ERR;
    for (uint64_t i = 0; i < n; i++) {
        PyObject *v;
        int r = read_obj(c, depth + 1, inner, &v);
        if (r != OK) {
            Py_DECREF(list);
            return r;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, v);
    }
    *res = list;
    return OK;
}

/* One msgpack object as msgpack.unpackb(raw=False, strict_map_key=True) makes it.
 * `depth` is the level a container starting here would have. In an inflated payload
 * (`inner`), ext 3 is a packed u64 list; every other ext is UNSURE. */
static int read_obj(Cur *c, int depth, int inner, PyObject **res)
{
    const unsigned char *q;
    if (c->p >= c->end)
        return UNSURE;
    unsigned char b = *c->p;
    if (b < 0x80 || b >= 0xE0 || (b >= 0xCC && b <= 0xD3)) {
        uint64_t v;
        int neg;
        int r = read_int(c, &v, &neg);
        if (r != OK)
            return r;
        *res = neg ? PyLong_FromLongLong((int64_t)v) : PyLong_FromUnsignedLongLong(v);
        return *res ? OK : ERR;
    }
    if ((b >= 0xA0 && b <= 0xBF) || (b >= 0xD9 && b <= 0xDB)) {
        const unsigned char *s;
        uint64_t n;
        int r = read_str(c, &s, &n);
        return r == OK ? make_str(s, n, res) : r;
    }
    if (b >= 0x80 && b <= 0x8F) {
        c->p++;
        return read_map(c, b & 0x0F, depth, inner, res);
    }
    if (b >= 0x90 && b <= 0x9F) {
        c->p++;
        return read_array(c, b & 0x0F, depth, inner, res);
    }
    if (is_ext_byte(b)) {
        int code;
        const unsigned char *d;
        uint64_t n;
        if (!inner || depth > WIRE_DEPTH || read_ext(c, &code, &d, &n) != OK || code != 3)
            return UNSURE;
        return u64_list(d, n, res);
    }
    c->p++;
    switch (b) {
    case 0xC0:
        *res = Py_NewRef(Py_None);
        return OK;
    case 0xC2:
        *res = Py_NewRef(Py_False);
        return OK;
    case 0xC3:
        *res = Py_NewRef(Py_True);
        return OK;
    case 0xC4: case 0xC5: case 0xC6: { /* bin 8/16/32 */
        int w = 1 << (b - 0xC4);
        if (!(q = take(c, w)))
            return UNSURE;
        uint64_t n = be(q, w);
        if (!(q = take(c, n)))
            return UNSURE;
        *res = PyBytes_FromStringAndSize((const char *)q, (Py_ssize_t)n);
        return *res ? OK : ERR;
    }
    case 0xCA: case 0xCB: { /* float 32/64, big-endian, as msgpack unpacks them */
        int n = b == 0xCA ? 4 : 8;
        if (!(q = take(c, n)))
            return UNSURE;
        double f = n == 4 ? PyFloat_Unpack4((const char *)q, 0) : PyFloat_Unpack8((const char *)q, 0);
        if (f == -1.0 && PyErr_Occurred())
            return ERR;
        *res = PyFloat_FromDouble(f);
        return *res ? OK : ERR;
    }
    case 0xDC: case 0xDD: case 0xDE: case 0xDF: { /* array 16/32, map 16/32 */
        int w = (b == 0xDC || b == 0xDE) ? 2 : 4;
        if (!(q = take(c, w)))
            return UNSURE;
        uint64_t n = be(q, w);
        return b <= 0xDD ? read_array(c, n, depth, inner, res) : read_map(c, n, depth, inner, res);
    }
    default: /* 0xC1 (never used) */
        return UNSURE;
    }
}

/* ---- records ------------------------------------------------------------------------- */

/* dict(zip(fields, values)) or, with fields NULL, the one map: the payload of an
 * inflated body `raw` decoded here; UNSURE if anything is off (the caller then asks
 * the reference). */
static int inner_payload(PyObject *raw, PyObject *fields, PyObject **res)
{
    Cur c = {(const unsigned char *)PyBytes_AS_STRING(raw),
             (const unsigned char *)PyBytes_AS_STRING(raw) + PyBytes_GET_SIZE(raw)};
    PyObject *v;
    int r = read_obj(&c, 1, 1, &v);
    if (r != OK)
        return r;
    if (c.p != c.end) {
        Py_DECREF(v);
        return UNSURE;
    }
    if (!fields) {
        if (!PyDict_CheckExact(v)) {
            Py_DECREF(v);
            return UNSURE;
        }
        *res = v;
        return OK;
    }
    Py_ssize_t nf = PyTuple_GET_SIZE(fields);
    if (!PyList_CheckExact(v) || PyList_GET_SIZE(v) != nf) {
        Py_DECREF(v);
        return UNSURE;
    }
    PyObject *d = PyDict_New();
    if (!d) {
        Py_DECREF(v);
        return ERR;
    }
    for (Py_ssize_t i = 0; i < nf; i++) {
        if (PyDict_SetItem(d, PyTuple_GET_ITEM(fields, i), PyList_GET_ITEM(v, i)) < 0) {
            Py_DECREF(d);
            Py_DECREF(v);
            return ERR;
        }
    }
    Py_DECREF(v);
    *res = d;
    return OK;
}

typedef struct {
    PyObject *dec, *names;
    PyObject *chunk;     /* dec.stream.chunk, looked up at the first deflated payload */
    Py_ssize_t max_record;
    PyObject *cause;     /* set when a deflated payload is damaged */
    Py_ssize_t inflated; /* dec.inflated after the last record's deflated payload, else -1 */
} Ctx;

/* "malformed record (<CodecError message>)" if the pending exception is a CodecError
 * (then cleared and stored in ctx->cause), else ERR with the exception left set. */
static int codec_cause(Ctx *ctx)
{
    if (!PyErr_ExceptionMatches(codec_error))
        return ERR;
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    ctx->cause = value ? PyUnicode_FromFormat("malformed record (%S)", value) : NULL;
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return ctx->cause ? OK : ERR;
}

/* The payload of a record whose element 6 (of 7) is ext 1 `data`: inflate (the only
 * step that changes state), count the inflated bytes, decode. OK with *res, or OK with
 * ctx->cause set (damage), or ERR. */
static int deflated_payload(Ctx *ctx, const unsigned char *data, uint64_t len,
                            PyObject *typ, PyObject *fields, PyObject **res)
{
    if (!ctx->chunk) {
        PyObject *stream = PyObject_GetAttr(ctx->dec, s_stream);
        if (!stream)
            return ERR;
        ctx->chunk = PyObject_GetAttr(stream, s_chunk);
        Py_DECREF(stream);
        if (!ctx->chunk)
            return ERR;
    }
    PyObject *raw = PyObject_CallFunction(ctx->chunk, "y#n", (const char *)data,
                                          (Py_ssize_t)len, ctx->max_record);
    if (!raw)
        return codec_cause(ctx);
    if (!PyBytes_CheckExact(raw)) {
        Py_DECREF(raw);
        PyErr_SetString(PyExc_TypeError, "Inflater.chunk did not return bytes");
        return ERR;
    }
    /* dec.inflated += len(raw) */
    PyObject *was = PyObject_GetAttr(ctx->dec, s_inflated);
    PyObject *add = was ? PyLong_FromSsize_t(PyBytes_GET_SIZE(raw)) : NULL;
    PyObject *now = add ? PyNumber_Add(was, add) : NULL;
    Py_XDECREF(was);
    Py_XDECREF(add);
    if (!now || PyObject_SetAttr(ctx->dec, s_inflated, now) < 0) {
        Py_XDECREF(now);
        Py_DECREF(raw);
        return ERR;
    }
    ctx->inflated = PyLong_AsSsize_t(now);
    Py_DECREF(now);
    if (ctx->inflated == -1 && PyErr_Occurred()) {
        Py_DECREF(raw);
        return ERR;
    }
    int r = inner_payload(raw, fields, res);
    if (r == UNSURE) { /* the reference decides: payload or CodecError */
        *res = PyObject_CallMethodObjArgs(ctx->dec, s_from_raw, raw, typ,
                                          fields ? fields : Py_None, NULL);
        r = *res ? OK : codec_cause(ctx);
    }
    Py_DECREF(raw);
    return r;
}

static void release(PyObject *src, PyObject *dst, PyObject *typ, PyObject *fields)
{
    Py_DECREF(src);
    Py_DECREF(dst);
    Py_DECREF(typ);
    Py_XDECREF(fields);
}

/* Decode one E body into the record for `seq`, advancing the step and time. UNSURE leaves
 * everything as it was (unless a deflated payload was reached: see deflated_payload). */
static int record(Ctx *ctx, const unsigned char *body, Py_ssize_t n, uint64_t seq,
                  uint64_t *step, uint64_t *time, PyObject **res)
{
    Cur c = {body, body + n};
    uint64_t count, h[6];
    int neg[6];
    if (read_array_len(&c, &count) != OK)
        return UNSURE;
    if (count < 6 || count > MAX_CONTAINER)
        return UNSURE;
    for (int i = 0; i < 6; i++)
        if (read_int(&c, &h[i], &neg[i]) != OK)
            return UNSURE;
    /* dstep: a signed 64-bit int; src, dst, type: known name indices; dcause, chan_seq >= 0 */
    if ((!neg[0] && h[0] > (uint64_t)INT64_MAX) || neg[1] || neg[2] || neg[3] || neg[4] || neg[5])
        return UNSURE;
    Py_ssize_t nn = PyList_GET_SIZE(ctx->names);
    if (h[1] >= (uint64_t)nn || h[2] >= (uint64_t)nn || h[3] >= (uint64_t)nn)
        return UNSURE;
    PyObject *src = PyList_GET_ITEM(ctx->names, (Py_ssize_t)h[1]);
    PyObject *dst = PyList_GET_ITEM(ctx->names, (Py_ssize_t)h[2]);
    PyObject *typ = PyList_GET_ITEM(ctx->names, (Py_ssize_t)h[3]);
    PyObject *fields = PyDict_GetItemWithError(wire_fields, typ); /* borrowed */
    if (!fields && PyErr_Occurred())
        return ERR;
    if (fields && !PyTuple_CheckExact(fields)) {
        PyErr_SetString(PyExc_TypeError, "WIRE_FIELDS values must be tuples");
        return ERR;
    }
    PyObject *payload = NULL;
    int r, held = 0;
    if (count == 7 && c.p < c.end && is_ext_byte(*c.p)) {
        int code;
        const unsigned char *data;
        uint64_t len;
        if (read_ext(&c, &code, &data, &len) != OK || code != 1 || c.p != c.end)
            return UNSURE;
        /* Python code runs in there: hold what we borrowed from names and WIRE_FIELDS */
        Py_INCREF(src);
        Py_INCREF(dst);
        Py_INCREF(typ);
        Py_XINCREF(fields);
        held = 1;
        r = deflated_payload(ctx, data, len, typ, fields, &payload);
        if (r == OK && !ctx->cause && !PyDict_CheckExact(payload)) {
            Py_CLEAR(payload);
            PyErr_SetString(PyExc_TypeError, "payload_from_raw did not return a dict");
            r = ERR;
        }
        if (r != OK || ctx->cause) {
            release(src, dst, typ, fields);
            return r;
        }
    } else if (fields) {
        Py_ssize_t nf = PyTuple_GET_SIZE(fields);
        if (count - 6 != (uint64_t)nf)
            return UNSURE;
        if (!(payload = PyDict_New()))
            return ERR;
        for (Py_ssize_t i = 0; i < nf; i++) {
            PyObject *v;
            r = read_obj(&c, 2, 0, &v);
            if (r == OK) {
                if (PyDict_SetItem(payload, PyTuple_GET_ITEM(fields, i), v) < 0)
                    r = ERR;
                Py_DECREF(v);
            }
            if (r != OK) {
                Py_DECREF(payload);
                return r;
            }
        }
    } else {
        if (count != 7 || c.p >= c.end || !((*c.p >= 0x80 && *c.p <= 0x8F) || *c.p == 0xDE || *c.p == 0xDF))
            return UNSURE; /* the reference names it: no single payload map */
        r = read_obj(&c, 2, 0, &payload);
        if (r != OK)
            return r;
    }
    if (c.p != c.end) { /* trailing bytes: msgpack's ExtraData (never after an ext 1) */
        Py_DECREF(payload);
        if (held)
            release(src, dst, typ, fields);
        return UNSURE;
    }
    uint64_t st = *step + h[0], tm = *time + st; /* mod 2**64 */
    PyObject *rec = PyList_New(8);
    if (!rec) {
        Py_DECREF(payload);
        if (held)
            release(src, dst, typ, fields);
        return ERR;
    }
    PyObject *o0 = PyLong_FromUnsignedLongLong(seq), *o1 = PyLong_FromUnsignedLongLong(tm);
    PyObject *o5 = PyLong_FromUnsignedLongLong(seq - h[4]), *o6 = PyLong_FromUnsignedLongLong(h[5]);
    PyList_SET_ITEM(rec, 0, o0);
    PyList_SET_ITEM(rec, 1, o1);
    PyList_SET_ITEM(rec, 2, Py_NewRef(src));
    PyList_SET_ITEM(rec, 3, Py_NewRef(dst));
    PyList_SET_ITEM(rec, 4, Py_NewRef(typ));
    PyList_SET_ITEM(rec, 5, o5);
    PyList_SET_ITEM(rec, 6, o6);
    PyList_SET_ITEM(rec, 7, payload);
    if (held)
        release(src, dst, typ, fields);
    if (!o0 || !o1 || !o5 || !o6) {
        Py_DECREF(rec); /* NULL slots are skipped by the list's dealloc */
        return ERR;
    }
    *step = st;
    *time = tm;
    *res = rec;
    return OK;
}

/* the varint frame length at buf[i:end]: -1 incomplete, -2 malformed (logfile._read_varint) */
static int64_t frame_len(const unsigned char *buf, Py_ssize_t i, Py_ssize_t end, Py_ssize_t *after)
{
    int64_t n = 0;
    for (int k = 0; k < 5; k++) {
        if (i + k >= end)
            return -1;
        unsigned char b = buf[i + k];
        n |= (int64_t)(b & 0x7F) << (7 * k);
        if (!(b & 0x80)) {
            if (b == 0 && k > 0)
                return -2;
            *after = i + k + 1;
            return n;
        }
    }
    return -2;
}

static int get_u64(PyObject *obj, PyObject *name, uint64_t *v)
{
    PyObject *o = PyObject_GetAttr(obj, name);
    if (!o)
        return -1;
    unsigned long long x = PyLong_AsUnsignedLongLong(o);
    Py_DECREF(o);
    if (x == (unsigned long long)-1 && PyErr_Occurred())
        return -1;
    *v = x;
    return 0;
}

static int set_u64(PyObject *obj, PyObject *name, uint64_t v)
{
    PyObject *o = PyLong_FromUnsignedLongLong(v);
    if (!o)
        return -1;
    int r = PyObject_SetAttr(obj, name, o);
    Py_DECREF(o);
    return r;
}

static PyObject *py_decode(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t pos, max_record, budget;
    unsigned long long expected;
    PyObject *dec, *out;
    if (!wire_fields) {
        PyErr_SetString(PyExc_RuntimeError, "_cdecode.configure() was not called");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "y*nKnOO!n", &view, &pos, &expected, &max_record, &dec,
                          &PyList_Type, &out, &budget))
        return NULL;
    Ctx ctx = {dec, NULL, NULL, max_record, NULL, -1};
    uint64_t step = 0, time = 0;
    PyObject *result = NULL, *status = Py_None;
    int failed = 0;
    ctx.names = PyObject_GetAttr(dec, s_names);
    if (!ctx.names || get_u64(dec, s_step, &step) < 0 || get_u64(dec, s_time, &time) < 0) {
        Py_XDECREF(ctx.names);
        PyBuffer_Release(&view);
        return NULL;
    }
    if (!PyList_CheckExact(ctx.names)) {
        PyErr_SetString(PyExc_TypeError, "dec.names must be a list");
        Py_DECREF(ctx.names);
        PyBuffer_Release(&view);
        return NULL;
    }
    const unsigned char *buf = view.buf;
    Py_ssize_t blen = view.len;
    if (pos < 0) {
        PyErr_SetString(PyExc_ValueError, "decode: negative position");
        Py_DECREF(ctx.names);
        PyBuffer_Release(&view);
        return NULL;
    }
    /* CRC of b"E" (the kind byte starts every event frame's checksum) */
    const uint32_t crc_e = crc32_update(0, (const unsigned char *)"E", 1);
    while (pos + 1 < blen && buf[pos] == 'E' && expected < UINT64_MAX) {
        Py_ssize_t h;
        int64_t n = frame_len(buf, pos + 1, blen, &h);
        if (n < 0 || n > max_record || h + 4 + n > blen)
            break;
        Py_ssize_t end = h + 4 + (Py_ssize_t)n;
        unsigned char seqb[8];
        for (int i = 0; i < 8; i++)
            seqb[i] = (unsigned char)(expected >> (8 * i));
        uint32_t crc = crc32_update(crc32_update(crc_e, seqb, 8), buf + h + 4, (size_t)n);
        uint32_t stored = (uint32_t)buf[h] | (uint32_t)buf[h + 1] << 8
                        | (uint32_t)buf[h + 2] << 16 | (uint32_t)buf[h + 3] << 24;
        if (crc != stored)
            break;
        PyObject *rec = NULL;
        ctx.inflated = -1;
        int r = record(&ctx, buf + h + 4, (Py_ssize_t)n, expected, &step, &time, &rec);
        if (r == ERR) {
            failed = 1;
            break;
        }
        if (ctx.cause) { /* a damaged deflated payload: the reference's cause, at pos */
            status = ctx.cause;
            break;
        }
        if (r == UNSURE)
            break;
        r = PyList_Append(out, rec);
        Py_DECREF(rec);
        if (r < 0) {
            failed = 1;
            break;
        }
        pos = end;
        expected++;
        /* a deflated payload took the batch's inflated bytes over budget */
        if (ctx.inflated >= 0 && ctx.inflated > budget) {
            PyObject *zero = PyLong_FromLong(0);
            if (!zero || PyObject_SetAttr(dec, s_inflated, zero) < 0) {
                Py_XDECREF(zero);
                failed = 1;
                break;
            }
            Py_DECREF(zero);
            status = inflated_tag;
            break;
        }
    }
    /* the time state of the records appended, also when an exception propagates */
    if (failed) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        if (set_u64(dec, s_step, step) < 0 || set_u64(dec, s_time, time) < 0)
            PyErr_Clear();
        PyErr_Restore(type, value, tb);
    } else if (set_u64(dec, s_step, step) == 0 && set_u64(dec, s_time, time) == 0) {
        result = Py_BuildValue("nKO", pos, expected, status);
    }
    Py_XDECREF(ctx.cause);
    Py_XDECREF(ctx.chunk);
    Py_DECREF(ctx.names);
    PyBuffer_Release(&view);
    return result;
}

static PyObject *py_configure(PyObject *self, PyObject *args)
{
    PyObject *wf, *ce, *tag;
    if (!PyArg_ParseTuple(args, "O!OO", &PyDict_Type, &wf, &ce, &tag))
        return NULL;
    if (!PyType_Check(ce) || !PyType_IsSubtype((PyTypeObject *)ce, (PyTypeObject *)PyExc_Exception)) {
        PyErr_SetString(PyExc_TypeError, "configure: the second argument must be an exception type");
        return NULL;
    }
    Py_XSETREF(wire_fields, Py_NewRef(wf));
    Py_XSETREF(codec_error, Py_NewRef(ce));
    Py_XSETREF(inflated_tag, Py_NewRef(tag));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"decode", py_decode, METH_VARARGS,
     "decode(buf, pos, expected, max_record, dec, out, budget) -> (pos, expected, cause)"},
    {"configure", py_configure, METH_VARARGS,
     "configure(WIRE_FIELDS, CodecError, INFLATED): the codec's tables, set once"},
    {"crc32", py_crc32, METH_VARARGS, "crc32(data, crc=0): this module's CRC-32 (tests)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cdecode",
                                    "C fast path of the log reader (events/_cdecode.c)", -1,
                                    methods};

PyMODINIT_FUNC PyInit__cdecode(void)
{
    crc_init();
#define INTERN(var, text) if (!(var = PyUnicode_InternFromString(text))) return NULL
    INTERN(s_names, "names");
    INTERN(s_step, "step");
    INTERN(s_time, "time");
    INTERN(s_stream, "stream");
    INTERN(s_inflated, "inflated");
    INTERN(s_chunk, "chunk");
    INTERN(s_from_raw, "payload_from_raw");
#undef INTERN
    return PyModule_Create(&module);
}
