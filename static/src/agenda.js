// Filled in with its page: see static/src/pages.js.
export {};
