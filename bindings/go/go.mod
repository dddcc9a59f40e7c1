module longattn

go 1.19
