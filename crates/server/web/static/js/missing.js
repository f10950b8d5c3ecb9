// The page for an address that names nothing: no script of its own beyond what every page runs.
import "./site.js";
