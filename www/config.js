// Tells the page where its WebSocket is. wschat serves its own version of this file saying
// servedByWschat: true (same origin); any other static server serves this one, and the page
// then connects to port 3000 on its own host, unless the URL gives ?ws=.
window.WSCHAT_CONFIG = { servedByWschat: false };
