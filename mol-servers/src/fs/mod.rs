//! FS: the file-system server (endpoint 1). Being written.
