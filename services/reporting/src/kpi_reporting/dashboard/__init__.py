"""The dashboard (issue 14): server-rendered pages a leader reads in a browser, in Vietnamese by default,
from the same read models as the JSON API; no script, no CDN. `router` is included by the app factory."""
