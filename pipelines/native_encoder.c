/* TFRecord framing of tf.train.Example rows with int64 features, one row per record.

   The byte layout is the one pipelines/tfrecord.py produces with numpy (and that
   tf.train.Example.SerializeToString(deterministic=True) produces): map entries sorted by
   key, each feature an Int64List (or, for float32 columns, a FloatList) with packed values. Framing: uint64 length, masked
   CRC-32C of the length, data, masked CRC-32C of the data.

   A feature is either a column (width values per row, int32 or int64) or a history
   window: the row's values are base[end - len .. end), left-padded with zeros to width.
   Windows let callers skip building (rows, width) arrays, and as the base's varints are
   encoded once (varint_stream), a window's packed bytes are one memcpy. */

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    const void *data;      /* column: rows * width values; window: the base's varint bytes */
    const int64_t *end;    /* window only: one past the row's last base index */
    const int64_t *len;    /* window only: number of real values (<= width) */
    const int64_t *offset; /* window only: base value i's bytes are data[offset[i]..[i+1]) */
    int64_t width;
    int64_t elsize;        /* 4: int32, 8: int64, -4: float32 (a FloatList) */
    const uint8_t *key;
    int64_t keylen;
} feature_t;

#define MAX_FEATURES 64

static uint32_t table[8][256];
static int ready = 0;
static int hardware = 0;

static void init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        table[0][i] = c;
    }
    for (int t = 1; t < 8; t++)
        for (int i = 0; i < 256; i++)
            table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xFF];
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    hardware = __builtin_cpu_supports("sse4.2") != 0;
#endif
    ready = 1;
}

static uint32_t crc_software(uint32_t c, const uint8_t *p, size_t n) {
    while (n >= 8) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + 4, 4);
        lo ^= c;  /* little-endian hosts only; checked by the Python loader's self-test */
        c = table[7][lo & 0xFF] ^ table[6][(lo >> 8) & 0xFF] ^ table[5][(lo >> 16) & 0xFF] ^
            table[4][lo >> 24] ^ table[3][hi & 0xFF] ^ table[2][(hi >> 8) & 0xFF] ^
            table[1][(hi >> 16) & 0xFF] ^ table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--) c = table[0][(c ^ *p++) & 0xFF] ^ (c >> 8);
    return c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t crc_hardware(uint32_t c, const uint8_t *p, size_t n) {
    uint64_t c64 = c;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c64 = __builtin_ia32_crc32di(c64, v);
        p += 8;
        n -= 8;
    }
    c = (uint32_t)c64;
    while (n--) c = __builtin_ia32_crc32qi(c, *p++);
    return c;
}
#endif

static uint32_t masked_crc(const uint8_t *p, size_t n) {
    uint32_t c;
#if defined(__x86_64__)
    if (hardware) c = crc_hardware(0xFFFFFFFFu, p, n);
    else
#endif
        c = crc_software(0xFFFFFFFFu, p, n);
    c = ~c;
    return ((c >> 15) | (c << 17)) + 0xA282EAD8u;
}

uint32_t crc32c(const uint8_t *p, int64_t n) {
    if (!ready) init();
    uint32_t c;
#if defined(__x86_64__)
    if (hardware) c = crc_hardware(0xFFFFFFFFu, p, (size_t)n);
    else
#endif
        c = crc_software(0xFFFFFFFFu, p, (size_t)n);
    return ~c;
}

int crc32c_uses_hardware(void) {
    if (!ready) init();
    return hardware;
}

static inline int varint_len(uint64_t v) {
    int n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static inline uint8_t *put_varint(uint8_t *o, uint64_t v) {
    while (v >= 0x80) {
        *o++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *o++ = (uint8_t)v;
    return o;
}

/* Ids below 2^28 (the common case) without branches on their size, which are
   unpredictable for ids of mixed magnitude: the 7-bit groups are spread into one 32-bit
   word, continuation bits added by length, and 4 bytes stored (the buffer has room). */
static inline uint8_t *put_varint32(uint8_t *o, int32_t value) {
    uint32_t v = (uint32_t)value;
    if (value < 0 || v >= (1u << 28)) return put_varint(o, (uint64_t)(int64_t)value);
    static const uint32_t cont[5] = {0, 0, 0x80, 0x8080, 0x808080};
    uint32_t n = 1 + (v >= (1u << 7)) + (v >= (1u << 14)) + (v >= (1u << 21));
    uint32_t w = (v & 0x7F) | ((v & 0x3F80) << 1) | ((v & 0x1FC000) << 2) |
                 ((v & 0xFE00000) << 3);
    w |= cont[n];
    memcpy(o, &w, 4);  /* little-endian */
    return o + n;
}

static uint8_t *put_range(uint8_t *o, const feature_t *f, int64_t i, int64_t stop) {
    if (f->elsize == 4) {
        const int32_t *d = (const int32_t *)f->data;
        for (; i < stop; i++) o = put_varint32(o, d[i]);
    } else {
        const int64_t *d = (const int64_t *)f->data;
        for (; i < stop; i++) o = put_varint(o, (uint64_t)d[i]);
    }
    return o;
}

/* Packed values of feature f for row r written at o; returns the new end. */
static uint8_t *put_values(uint8_t *o, const feature_t *f, int64_t r) {
    if (f->end) {
        int64_t len = f->len[r], end = f->end[r];
        memset(o, 0, (size_t)(f->width - len));
        o += f->width - len;
        int64_t from = f->offset[end - len], bytes = f->offset[end] - from;
        memcpy(o, (const uint8_t *)f->data + from, (size_t)bytes);
        return o + bytes;
    }
    if (f->elsize == -4) {
        memcpy(o, (const uint8_t *)f->data + 4 * r * f->width, (size_t)(4 * f->width));
        return o + 4 * f->width;
    }
    return put_range(o, f, r * f->width, (r + 1) * f->width);
}

/* Writes n records to out (the caller sizes it with max_record_bytes); returns the byte
   count, or -1 for too many features. `scratch` holds one row's packed values. */
int64_t encode_records(int64_t n, int64_t nf, const feature_t *fs, uint8_t *out,
                       uint8_t *scratch) {
    if (!ready) init();
    if (nf > MAX_FEATURES) return -1;
    uint8_t *o = out;
    uint8_t *start[MAX_FEATURES];
    uint64_t packed[MAX_FEATURES], entry[MAX_FEATURES];
    for (int64_t r = 0; r < n; r++) {
        uint8_t *s = scratch;
        uint64_t features_len = 0;
        for (int64_t j = 0; j < nf; j++) {
            start[j] = s;
            s = put_values(s, &fs[j], r);
            packed[j] = (uint64_t)(s - start[j]);
            uint64_t list = 1 + varint_len(packed[j]) + packed[j];
            uint64_t feature = 1 + varint_len(list) + list;
            entry[j] = 2 + fs[j].keylen + 1 + varint_len(feature) + feature;
            features_len += 1 + varint_len(entry[j]) + entry[j];
        }
        uint64_t data_len = 1 + varint_len(features_len) + features_len;
        memcpy(o, &data_len, 8);  /* little-endian */
        uint32_t len_crc = masked_crc(o, 8);
        memcpy(o + 8, &len_crc, 4);
        uint8_t *d = o + 12, *w = d;
        *w++ = 0x0A;
        w = put_varint(w, features_len);
        for (int64_t j = 0; j < nf; j++) {
            uint64_t list = 1 + varint_len(packed[j]) + packed[j];
            uint64_t feature = 1 + varint_len(list) + list;
            *w++ = 0x0A;
            w = put_varint(w, entry[j]);
            *w++ = 0x0A;
            *w++ = (uint8_t)fs[j].keylen;
            memcpy(w, fs[j].key, (size_t)fs[j].keylen);
            w += fs[j].keylen;
            *w++ = 0x12;
            w = put_varint(w, feature);
            *w++ = fs[j].elsize == -4 ? 0x12 : 0x1A;  /* FloatList or Int64List */
            w = put_varint(w, list);
            *w++ = 0x0A;
            w = put_varint(w, packed[j]);
            memcpy(w, start[j], packed[j]);
            w += packed[j];
        }
        uint32_t data_crc = masked_crc(d, (size_t)data_len);
        memcpy(w, &data_crc, 4);
        o = w + 4;
    }
    return (int64_t)(o - out);
}

/* Varint bytes of n values (int32 or int64) back to back, and offset[0..n]: value i's
   bytes are out[offset[i]..offset[i+1]). `out` needs 10 * n bytes (+3 slack). */
int64_t varint_stream(const void *values, int64_t elsize, int64_t n, uint8_t *out,
                      int64_t *offset) {
    feature_t f = {0};
    f.data = values;
    f.elsize = elsize;
    uint8_t *o = out;
    for (int64_t i = 0; i < n; i++) {
        offset[i] = (int64_t)(o - out);
        o = put_range(o, &f, i, i + 1);
    }
    offset[n] = (int64_t)(o - out);
    return offset[n];
}
