// The slide upload page (resumable upload with progress).
export {};
