module rtcore-peer-go

go 1.19
