"""Opening the files fastrnn reads: regular files only, never blocked on, of a bounded size.

A text or a checkpoint named on the command line, or recorded in a checkpoint,
may be anything the file system holds.  A FIFO would block the first read
forever and a device (``/dev/zero``) never ends, so the file is opened
non-blocking and its kind and size come from ``fstat`` of the very file
opened, before a byte is read.
"""

import errno
import os
import stat

_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def open_regular(path, error, max_bytes, what):
    """Open a regular file of at most ``max_bytes`` bytes for reading, unbuffered.

    Parameters
    ----------
    path : str or os.PathLike
    error : type
        The exception (a ValueError class) raised for a file of another kind
        or too large; its one-line message names the file.
    max_bytes : int
        The largest size accepted.
    what : str
        What the file should be, for the messages (e.g. ``"a text file"``).

    Returns
    -------
    file : io.FileIO
        Open in ``"rb"`` mode, blocking again.
    size : int
        Its size in bytes when opened.

    Raises
    ------
    OSError
        If it cannot be opened (missing, no permission) or is a directory.
    """
    name = os.fspath(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(name, flags | getattr(os, "O_BINARY", 0))  # a FIFO opens at once, unread
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), name)
        if not stat.S_ISREG(st.st_mode):
            kind = next((kind for test, kind in _KINDS if test(st.st_mode)), "not a regular file")
            raise error(f"{name} is {kind}, not {what}: fastrnn reads only regular files")
        if st.st_size > max_bytes:
            raise error(f"{name} is {st.st_size:,} bytes, more than the {max_bytes:,} "
                        f"fastrnn reads as {what}")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb", buffering=0), st.st_size
    except BaseException:
        os.close(fd)
        raise


def read_exactly(f, size, error, name):
    """The ``size`` bytes of an open regular file, as a bytearray; one more means it grew."""
    buf = bytearray(size)
    view = memoryview(buf)
    done = 0
    while done < size:
        n = f.readinto(view[done:])
        if not n:
            raise error(f"{name} shrank while it was read; read it again when it is complete")
        done += n
    view.release()
    if f.read(1):
        raise error(f"{name} grew while it was read; read it again when it is complete")
    return buf
