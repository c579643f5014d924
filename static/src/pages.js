// Behaviour shared by the ordinary pages (worklist, case, meetings, administration): each
// module enhances the elements that ask for it, and does nothing on a page without them.
import "./confirm.js";
import "./picker.js";
import "./agenda.js";
import "./worklist.js";
import "./admin.js";
