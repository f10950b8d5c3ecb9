// The audit log: server-rendered; the shared header's script only.
import "./site.js";
