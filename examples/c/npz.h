/* npz.h — a small reader for the .npz files that tapegrad.save (and numpy.savez) write,
 * for C programs that use weights saved from Python. Header-only: include it in one or
 * more .c files (its functions are static). It needs nothing but the C standard library
 * and tapegrad.h.
 *
 *   char err[256];
 *   tg_tensor *w = npz_load("model.npz", "0.weight", err, sizeof err);
 *   if (!w) fprintf(stderr, "%s\n", err);
 *
 * What it reads (what tapegrad.save writes): a zip archive whose members are STORED
 * (not compressed; numpy.savez_compressed files are refused with a message), each
 * member "<name>.npy" an .npy file (format 1.0, 2.0 or 3.0) holding a C-order
 * little-endian array of float32 ('<f4'), float64 ('<f8'), int64 ('<i8') or bool ('|b1'),
 * 0 to TG_MAX_DIMS dims. Zip64 entries (numpy always writes them) are handled. Anything
 * else (Fortran order, big-endian, other dtypes, a truncated file) fails with a message
 * naming the file, the member and the reason; it never reads out of bounds.
 * The whole file is read into memory, which suits model weights.
 */
#ifndef TAPEGRAD_NPZ_H
#define TAPEGRAD_NPZ_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tapegrad.h"

static void npz_error_(char *err, size_t n, const char *fmt, ...) {
    if (!err || !n) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
}

static uint64_t npz_le_(const unsigned char *p, int bytes) {
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* Parses the .npy header dict: descr, fortran_order, shape. 0 on success. */
static int npz_parse_header_(const char *h, size_t len, tg_dtype *dtype, int *ndim,
                             int64_t *shape, const char **why) {
    char buf[1024];
    if (len >= sizeof buf) { *why = "header too long"; return -1; }
    memcpy(buf, h, len);
    buf[len] = '\0';
    const char *d = strstr(buf, "'descr':");
    const char *f = strstr(buf, "'fortran_order':");
    const char *s = strstr(buf, "'shape':");
    if (!d || !f || !s) { *why = "not an .npy header"; return -1; }
    d = strchr(d + 8, '\'');
    if (!d) { *why = "bad descr"; return -1; }
    if (!strncmp(d, "'<f4'", 5)) *dtype = TG_FLOAT32;
    else if (!strncmp(d, "'<f8'", 5)) *dtype = TG_FLOAT64;
    else if (!strncmp(d, "'<i8'", 5)) *dtype = TG_INT64;
    else if (!strncmp(d, "'|b1'", 5)) *dtype = TG_BOOL;
    else { *why = "dtype is not <f4, <f8, <i8 or |b1"; return -1; }
    f += 16;
    while (*f == ' ') f++;
    if (strncmp(f, "False", 5)) { *why = "Fortran-order arrays are not supported"; return -1; }
    s = strchr(s + 8, '(');
    if (!s) { *why = "bad shape"; return -1; }
    s++;
    *ndim = 0;
    for (;;) {
        while (*s == ' ' || *s == ',') s++;
        if (*s == ')') break;
        if (*s < '0' || *s > '9') { *why = "bad shape"; return -1; }
        if (*ndim == TG_MAX_DIMS) { *why = "too many dims"; return -1; }
        char *end;
        long long v = strtoll(s, &end, 10);
        if (end == s || v < 0) { *why = "bad shape"; return -1; }
        shape[(*ndim)++] = (int64_t)v;
        s = end;
    }
    return 0;
}

/* The .npy bytes [p, p+n) as a new tensor, or NULL with *why set. */
static tg_tensor *npz_tensor_from_npy_(const unsigned char *p, uint64_t n, const char **why) {
    if (n < 10 || memcmp(p, "\x93NUMPY", 6)) { *why = "not an .npy member"; return NULL; }
    uint64_t hlen, off;
    if (p[6] == 1) { hlen = npz_le_(p + 8, 2); off = 10; }
    else if ((p[6] == 2 || p[6] == 3) && n >= 12) { hlen = npz_le_(p + 8, 4); off = 12; }
    else { *why = "unknown .npy version"; return NULL; }
    if (hlen > n - off) { *why = "truncated .npy header"; return NULL; }
    tg_dtype dtype;
    int ndim;
    int64_t shape[TG_MAX_DIMS];
    if (npz_parse_header_((const char *)p + off, (size_t)hlen, &dtype, &ndim, shape, why) != 0)
        return NULL;
    uint64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] && numel > UINT64_MAX / (uint64_t)shape[i]) { *why = "size overflows"; return NULL; }
        numel *= (uint64_t)shape[i];
    }
    uint64_t size = tg_dtype_size(dtype);
    if (numel > (n - off - hlen) / size) { *why = "truncated array data"; return NULL; }
    tg_tensor *t = tg_from_data(dtype, ndim, shape, p + off + hlen);
    if (!t) *why = tg_last_error();
    return t;
}

/* Array `name` of the .npz file at `path` as a new tensor (the caller releases it), or
 * NULL with a message in err (err may be NULL). */
static tg_tensor *npz_load(const char *path, const char *name, char *err, size_t errlen) {
    FILE *fp = fopen(path, "rb");
    if (!fp) { npz_error_(err, errlen, "npz: cannot open %s", path); return NULL; }
    unsigned char *data = NULL;
    long size = -1;
    if (fseek(fp, 0, SEEK_END) == 0) size = ftell(fp);
    if (size >= 0 && fseek(fp, 0, SEEK_SET) == 0) data = malloc(size ? (size_t)size : 1);
    if (!data || fread(data, 1, (size_t)size, fp) != (size_t)size) {
        npz_error_(err, errlen, "npz: cannot read %s", path);
        free(data);
        fclose(fp);
        return NULL;
    }
    fclose(fp);
    const uint64_t n = (uint64_t)size;
    const size_t want = strlen(name);
    tg_tensor *result = NULL;
    const char *why = NULL;
    uint64_t pos = 0;
    int found = 0;
    while (!found && !why) {
        if (n - pos < 4 || npz_le_(data + pos, 4) != 0x04034b50u) break; /* central directory */
        if (n - pos < 30) { why = "truncated zip entry"; break; }
        const unsigned char *h = data + pos;
        unsigned flags = (unsigned)npz_le_(h + 6, 2), method = (unsigned)npz_le_(h + 8, 2);
        uint64_t csize = npz_le_(h + 18, 4), usize = npz_le_(h + 22, 4);
        uint64_t nlen = npz_le_(h + 26, 2), xlen = npz_le_(h + 28, 2);
        if (nlen + xlen > n - pos - 30) { why = "truncated zip entry"; break; }
        const unsigned char *ename = h + 30, *extra = ename + nlen;
        if (csize == 0xFFFFFFFFu || usize == 0xFFFFFFFFu) { /* zip64 sizes in the extra field */
            int ok = 0;
            for (uint64_t x = 0; x + 4 <= xlen;) {
                uint64_t id = npz_le_(extra + x, 2), len = npz_le_(extra + x + 2, 2);
                if (len > xlen - x - 4) break;
                if (id == 1 && len >= 16) {
                    usize = npz_le_(extra + x + 4, 8);
                    csize = npz_le_(extra + x + 12, 8);
                    ok = 1;
                    break;
                }
                x += 4 + len;
            }
            if (!ok) { why = "bad zip64 entry"; break; }
        }
        if (flags & 8) { why = "zip entries with data descriptors are not supported"; break; }
        uint64_t start = pos + 30 + nlen + xlen;
        if (csize > n - start) { why = "truncated zip entry"; break; }
        if (nlen == want + 4 && !memcmp(ename, name, want) && !memcmp(ename + want, ".npy", 4)) {
            found = 1;
            if (method != 0 || csize != usize)
                why = "compressed members are not supported (save with tapegrad.save or numpy.savez)";
            else
                result = npz_tensor_from_npy_(data + start, usize, &why);
        }
        pos = start + csize;
    }
    if (!found && !why) why = "no such array";
    if (!result) npz_error_(err, errlen, "npz: %s: %s: %s", path, name, why);
    free(data);
    return result;
}

#endif /* TAPEGRAD_NPZ_H */
