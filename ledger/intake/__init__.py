"""The group commit of verified callbacks: the batch rules (`rules`, on an I/O object), the I/O for each store
(`io`), and the driver, a task on the caller's event loop (`loop`)."""
