/* web.h — the dashboard: GET / (one page, its script and style compiled into the
 * binary), the charting library served from its Debian install path, and PNG grids of
 * a job's reconstructions and prior samples from its newest checkpoint. The handlers
 * are entries of the route table in routes.c; they need api_req_user() to be an
 * api_ctx. */
#ifndef VAED_API_WEB_H
#define VAED_API_WEB_H

#include <stddef.h>

#include "api/http.h"

/* GET /: web/index.html. */
void api_h_web_index(api_req *req);

/* GET /web/{name:s}: the page's own files (web/app.js, web/style.css),
 * from the copies compiled in; 404 for any other name. */
void api_h_web_asset(api_req *req);

/* GET /static/{name:s}: dygraph.min.js, dygraph.min.css and synchronizer.js read from
 * $VAED_DYGRAPHS_DIR or /usr/share/javascript/dygraphs (Debian's libjs-dygraphs);
 * 404 for any other name, 503 naming the package when the files are missing. */
void api_h_web_static(api_req *req);

/* GET /v1/jobs/{id}/images/reconstructions.png and …/samples.png: for a job on image
 * data (IDX, 3-D), the newest checkpoint's model (or ?step=N's) applied to the first 8
 * held-out rows (top: the rows, bottom: their reconstructions through the posterior
 * mean) or to 8 draws z ~ N(0, I) from a fixed seed. 404 without a checkpoint, 422
 * for data that is not images. */
void api_h_web_recon(api_req *req);
void api_h_web_samples(api_req *req);

/* Encode a gray image (w × h floats in [0, 1], clamped) as PNG. Returns 0 and *out
 * (malloc'd, caller frees) and *len, or VAED_ENOMEM / VAED_EIO with *out NULL. */
int api_png_gray(const float *px, int w, int h, unsigned char **out, size_t *len);

#endif
