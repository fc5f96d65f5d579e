index
