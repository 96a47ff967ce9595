"""errno values and the strings a shell prints for them (strerror)."""
EPERM, ENOENT, EIO, ENOMEM, EACCES, EBUSY, EEXIST, ENODEV, EINVAL = 1, 2, 5, 12, 13, 16, 17, 19, 22
STRERROR = {
    EPERM: "Operation not permitted", ENOENT: "No such file or directory", EIO: "Input/output error",
    ENOMEM: "Cannot allocate memory", EACCES: "Permission denied", EBUSY: "Device or resource busy",
    EEXIST: "File exists", ENODEV: "No such device", EINVAL: "Invalid argument",
}
NAME = {EPERM: "EPERM", ENOENT: "ENOENT", EIO: "EIO", ENOMEM: "ENOMEM", EACCES: "EACCES",
        EBUSY: "EBUSY", EEXIST: "EEXIST", ENODEV: "ENODEV", EINVAL: "EINVAL"}


def strerror(err: int) -> str:
    return STRERROR.get(abs(err), f"Unknown error {abs(err)}")
