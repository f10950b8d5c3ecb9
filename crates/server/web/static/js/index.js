// The front page (the list of stories): no script of its own beyond what every page runs.
import "./site.js";
