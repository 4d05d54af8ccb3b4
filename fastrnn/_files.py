"""Opening files: regular files only, never blocked on, of a bounded size, links where allowed.

A text or a checkpoint named on the command line, or recorded in a checkpoint,
may be anything the file system holds.  A FIFO would block the first read
forever and a device (``/dev/zero``) never ends, so the file is opened
non-blocking and its kind and size come from ``fstat`` of the very file
opened, before a byte is read.

The files of a run or sweep directory (its lock, history, records and logs)
are the run's own: a symbolic link or a special file there is refused, never
followed (``O_NOFOLLOW``) or waited on, so nothing outside the directory is
ever written and no command hangs on a FIFO.  Files the run replaces whole go
through :func:`atomic_write` (a rename, which replaces a
link instead of writing through it); :func:`refuse_special` checks their
names first, so that a link there is refused rather than silently replaced.
"""

import errno
import os
import stat
import tempfile

_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class RunFileError(ValueError):
    """A symbolic link or a special file where a run or a sweep keeps one of its files."""


def _link_refusal(error, name, what):
    return error(f"{name} is a symbolic link, where fastrnn keeps {what}: it writes nothing "
                 f"through a link; remove the link, or use another directory")


def _kind(mode):
    return next((kind for test, kind in _KINDS if test(mode)), "not a regular file")


def _special_refusal(error, name, mode, what):
    return error(f"{name} is {_kind(mode)}, where fastrnn keeps {what} in a regular file; "
                 f"remove it, or use another directory")


def refuse_special(path, error, what):
    """Refuse a symbolic link or a special file at ``path``, where fastrnn keeps ``what``.

    A missing file, a regular file or a directory (refused by the callers in
    their own words) passes.  Nothing is opened.

    Raises
    ------
    error
        A one-line message naming the file and what it is.
    """
    name = os.fspath(path)
    try:
        st = os.lstat(name)
    except (FileNotFoundError, NotADirectoryError):
        return
    if stat.S_ISLNK(st.st_mode):
        raise _link_refusal(error, name, what)
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        raise _special_refusal(error, name, st.st_mode, what)


def open_own(path, flags, error, what):
    """Open a file of a run's directory as a descriptor: never through a link, never blocked on.

    Parameters
    ----------
    path : str or os.PathLike
    flags : int
        ``os.O_RDWR | os.O_CREAT`` (a lock), ``os.O_WRONLY | os.O_APPEND |
        os.O_CREAT`` (a log), ...; no-follow, non-blocking and close-on-exec
        are added.
    error : type
        The exception (a ValueError class) for a link or a special file.
    what : str
        What the file holds, for the messages (e.g. ``"the run's lock"``).

    Returns
    -------
    int
        A descriptor of a regular file (created with mode 0666 less the
        umask), blocking again.

    Raises
    ------
    error
        If a symbolic link or a special file is there.
    OSError
        If it cannot be opened for another reason (no permission, a directory).
    """
    name = os.fspath(path)
    extra = (getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
             | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
    try:
        fd = os.open(name, flags | extra, 0o666)
    except OSError:
        refuse_special(name, error, what)  # ELOOP for a link, ENXIO for a FIFO nobody reads
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            if stat.S_ISDIR(st.st_mode):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), name)
            raise _special_refusal(error, name, st.st_mode, what)
        os.set_blocking(fd, True)
        return fd
    except BaseException:
        os.close(fd)
        raise


def open_regular(path, error, max_bytes, what, *, follow_links=True):
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
    follow_links : bool, default True
        False for a file of a run's own directory: a symbolic link there is
        refused (``error``), not read through.

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
    if not follow_links:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(name, flags | getattr(os, "O_BINARY", 0))  # a FIFO opens at once, unread
    except OSError as failure:
        if failure.errno == errno.ELOOP and not follow_links and os.path.islink(name):
            raise _link_refusal(error, name, what) from None
        raise
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), name)
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{name} is {_kind(st.st_mode)}, not {what}: fastrnn reads only "
                        f"regular files")
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


def _new_file_mode(path):
    try:
        return os.stat(path).st_mode & 0o7777  # keep the mode of the file replaced
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write(path, write):
    """Write a file so that it is replaced whole or not at all.

    ``write(f)`` fills a temporary file (opened ``"wb"``) in the same directory;
    it is flushed and fsynced, then renamed over ``path`` with :func:`os.replace`.
    On any error the temporary file is removed and ``path`` is left as it was.

    Parameters
    ----------
    path : str or os.PathLike
    write : callable
        Takes the open binary file object.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        os.chmod(tmp, _new_file_mode(path))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable; not possible on every platform
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def file_identity(path):
    """What tells one version of a file from another (None when it cannot be read).

    An atomic save (:func:`atomic_write`) makes a new inode, so two versions
    of a checkpoint never share an identity even when their sizes and times do.

    Parameters
    ----------
    path : str or os.PathLike
        The file; a missing or unreadable one has no identity.

    Returns
    -------
    tuple or None
        ``(st_dev, st_ino, st_mtime_ns, st_size)``.
    """
    try:
        return stat_identity(os.stat(path))
    except OSError:
        return None


def stat_identity(st):
    """The identity (see :func:`file_identity`) of a file's ``os.stat`` result."""
    return st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size


def describe_os_error(error, *, with_name=True):
    """An OSError as one line: ``"NAME: reason"`` (or the reason alone), never a traceback.

    Parameters
    ----------
    error : OSError
    with_name : bool, default True
        Start with the file the error names, when it names one.
    """
    reason = error.strerror or str(error).strip() or type(error).__name__
    if with_name and error.filename:
        return f"{error.filename}: {reason}"
    return reason
